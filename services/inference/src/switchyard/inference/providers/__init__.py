"""Provider adapters: each turns a request into a stream of deltas that ends with a `Finish`."""
