"""The Heat engine: templates, intrinsic functions, parameters, environments, stacks."""
