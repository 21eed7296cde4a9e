"""The HTTP/JSON front: our own server on httptools, a router, a middleware chain."""
