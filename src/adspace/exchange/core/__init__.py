"""exchange/core/__init__.py"""
