"""experiments/mosaic/__init__.py"""
