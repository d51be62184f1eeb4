"""exchange/http/__init__.py"""
