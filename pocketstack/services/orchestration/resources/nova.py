"""placeholder"""
PLUGINS: list = []
