mod bounds;
mod captures;
mod fixtures;
mod framing;
mod http;
mod requests;
mod retry;
mod secrets;
