"""exchange/services/dashboard/__init__.py"""
