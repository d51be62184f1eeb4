"""exchange/domain/__init__.py"""
