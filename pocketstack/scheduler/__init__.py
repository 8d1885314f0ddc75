"""Nova's filter scheduler: resource prefilter (placement), filters, weighers."""
