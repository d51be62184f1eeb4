"""HTTP routers (thin: parse, authenticate, call the service layer)."""
