mod fixtures;
mod framing;
mod http;
