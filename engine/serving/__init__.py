"""Generating replies: one request, continuous batching or a fair queue, admission, sampling, ZeroGPU, a remote server."""
