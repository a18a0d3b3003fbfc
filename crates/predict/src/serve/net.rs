//! Connections: accepted under a total and a per-client cap, served by hyper's HTTP/1 server
//! with its header-read timeout, a write timeout, a request cap per connection, and drained
//! on shutdown.
//!
//! Written here rather than taken from a crate:
//! - the **write timeout** ([`WriteTimeout`]): hyper 1's server has a header-read timeout but
//!   none for writing, and tower's timeouts bound a handler, not the socket; a client that
//!   pipelines requests and never reads its answers would hold its connection (and a task
//!   writing to it) for ever;
//! - the **per-client cap** ([`PerClient`]): tower's `ConcurrencyLimit` is one global count,
//!   and a cap on connections must act before hyper sees a byte.

use super::access::Refusal;
use axum::Router;
use axum::http::{HeaderValue, header};
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Semaphore, watch};

/// Connection settings ([`super::ServeOptions::net`]).
#[derive(Debug, Clone)]
pub struct NetOptions {
    /// Open connections; more are answered 503 and closed.
    pub max_connections: usize,
    /// Open connections from one client address; more are answered 503 and closed.
    pub max_connections_per_client: usize,
    /// Time a connection has to send a whole request head.
    pub header_timeout: Duration,
    /// Time the socket may refuse every byte of an answer before the connection is closed.
    pub write_timeout: Duration,
    /// Answers on one connection before it is closed.
    pub max_requests_per_connection: usize,
    /// On shutdown, time given to the requests in flight.
    pub drain_timeout: Duration,
}

impl Default for NetOptions {
    fn default() -> Self {
        NetOptions {
            max_connections: 256,
            max_connections_per_client: 32,
            header_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(5),
            max_requests_per_connection: 1000,
            drain_timeout: Duration::from_secs(15),
        }
    }
}

/// The client's address, put in each request's extensions.
#[derive(Debug, Clone, Copy)]
pub struct Client(pub IpAddr);

/// Counts per client address, each count capped; a [`Held`] gives its unit back when dropped.
#[derive(Debug, Default)]
pub struct PerClient {
    counts: Mutex<HashMap<IpAddr, usize>>,
}

/// One unit of a client's count.
#[derive(Debug)]
pub struct Held {
    of: Arc<PerClient>,
    ip: IpAddr,
}

impl PerClient {
    /// Take one unit for `ip` unless it already holds `cap`.
    pub fn take(self: &Arc<Self>, ip: IpAddr, cap: usize) -> Option<Held> {
        let mut m = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(ip).or_insert(0);
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(Held {
            of: self.clone(),
            ip,
        })
    }

    /// Units `ip` holds now.
    pub fn held(&self, ip: IpAddr) -> usize {
        let m = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        m.get(&ip).copied().unwrap_or(0)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut m = self.of.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// A stream whose writes fail with `TimedOut` once one has waited `limit` without the socket
/// taking a byte (the client is not reading).
pub struct WriteTimeout<S> {
    inner: S,
    limit: Duration,
    waiting: Option<Pin<Box<tokio::time::Sleep>>>,
    timed_out: Arc<AtomicUsize>,
}

impl<S> WriteTimeout<S> {
    pub fn new(inner: S, limit: Duration, timed_out: Arc<AtomicUsize>) -> Self {
        WriteTimeout {
            inner,
            limit,
            waiting: None,
            timed_out,
        }
    }

    /// After a write returned `Pending`: start (or keep) the clock, fail once it runs out.
    fn pending<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let limit = self.limit;
        let sleep = self
            .waiting
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.waiting = None;
                self.timed_out.fetch_add(1, Ordering::Relaxed);
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client did not read its answer within --write-timeout",
                )))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn done<T>(&mut self, r: Poll<io::Result<T>>, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match r {
            Poll::Pending => self.pending(cx),
            ready => {
                self.waiting = None;
                ready
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteTimeout<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteTimeout<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.done(r, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.done(r, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.done(r, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.done(r, cx)
    }
}

/// What a connection over a cap gets before it is closed.
fn over_capacity(per_client: bool) -> Vec<u8> {
    let body = if per_client {
        "{\"error\":\"too many connections from this address (--max-connections-per-client); retry later\"}"
    } else {
        "{\"error\":\"too many connections (--max-connections); retry later\"}"
    };
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Answer a connection over a cap and close it, draining what the client sends for at most
/// 200 ms (closing with unread data resets the connection, and the client may lose the 503).
async fn refuse(mut stream: tokio::net::TcpStream, per_client: bool) {
    let _ = stream.try_write(&over_capacity(per_client));
    let _ =
        std::future::poll_fn(|cx| tokio::io::AsyncWrite::poll_shutdown(Pin::new(&mut stream), cx))
            .await;
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_millis(200);
    while let Ok(Ok(())) = tokio::time::timeout_at(deadline, stream.readable()).await {
        match stream.try_read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => break,
        }
    }
}

/// Resolves once the shutdown flag is set (or its sender is gone).
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// Counters the connection layer reports (to `/metrics` through `on_refusal`).
pub type OnRefusal = Arc<dyn Fn(Refusal) + Send + Sync>;

/// Serve `app` on `listener` until `shutdown` resolves, then stop accepting, let every open
/// connection finish the request it is on (hyper's graceful shutdown: idle ones close at
/// once), and return when all are closed or `drain_timeout` has passed (`false` then).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    o: NetOptions,
    on_refusal: OnRefusal,
    shutdown: impl Future<Output = ()>,
) -> bool {
    let open = Arc::new(Semaphore::new(o.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::select! {
        () = accept_loop(&listener, &app, &o, &on_refusal, &open, stop_rx) => {}
        () = shutdown => {}
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let all = o.max_connections as u32;
    tokio::time::timeout(o.drain_timeout, open.acquire_many(all))
        .await
        .is_ok()
}

async fn accept_loop(
    listener: &tokio::net::TcpListener,
    app: &Router,
    o: &NetOptions,
    on_refusal: &OnRefusal,
    open: &Arc<Semaphore>,
    stop: watch::Receiver<bool>,
) {
    let clients = Arc::new(PerClient::default());
    let closing = Arc::new(Semaphore::new(64));
    loop {
        let (stream, peer): (_, SocketAddr) = match listener.accept().await {
            Ok(v) => v,
            Err(e) => {
                // Out of file descriptors and the like: wait for connections to close.
                eprintln!("fer-predict serve: accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let ip = peer.ip().to_canonical();
        let client = clients.take(ip, o.max_connections_per_client);
        let total = open.clone().try_acquire_owned().ok();
        let (Some(client), Some(total)) = (client, total) else {
            on_refusal(Refusal::Connections);
            let per_client = clients.held(ip) >= o.max_connections_per_client;
            match closing.clone().try_acquire_owned() {
                Ok(p) => {
                    tokio::spawn(async move {
                        let _p = p;
                        refuse(stream, per_client).await;
                    });
                }
                Err(_) => drop(stream),
            }
            continue;
        };
        let app = app.clone();
        let o = o.clone();
        let mut stop = stop.clone();
        let on_refusal = on_refusal.clone();
        tokio::spawn(async move {
            let _held = (total, client);
            let _ = stream.set_nodelay(true);
            let served = Arc::new(AtomicUsize::new(0));
            let cap = o.max_requests_per_connection;
            let svc = hyper::service::service_fn(move |mut req: axum::extract::Request<_>| {
                req.extensions_mut().insert(Client(ip));
                let n = served.fetch_add(1, Ordering::Relaxed) + 1;
                let app = app.clone();
                async move {
                    let req = req.map(axum::body::Body::new);
                    let mut res = tower::ServiceExt::oneshot(app, req).await?;
                    if n >= cap {
                        // hyper closes the connection after this answer.
                        res.headers_mut()
                            .insert(header::CONNECTION, HeaderValue::from_static("close"));
                    }
                    Ok::<_, std::convert::Infallible>(res)
                }
            });
            let timed_out = Arc::new(AtomicUsize::new(0));
            let io = WriteTimeout::new(stream, o.write_timeout, timed_out.clone());
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(o.header_timeout)
                .serve_connection(hyper_util::rt::TokioIo::new(io), svc);
            let mut conn = std::pin::pin!(conn);
            // A client that times out or hangs up ends its connection; nothing to report.
            tokio::select! {
                _ = conn.as_mut() => {}
                () = stopped(&mut stop) => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            if timed_out.load(Ordering::Relaxed) > 0 {
                on_refusal(Refusal::Write);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_client_counts_are_capped_and_given_back() {
        let c = Arc::new(PerClient::default());
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        let h1 = c.take(a, 2).unwrap();
        let _h2 = c.take(a, 2).unwrap();
        assert!(c.take(a, 2).is_none());
        assert!(c.take(b, 2).is_some());
        drop(h1);
        assert_eq!(c.held(a), 1);
        assert!(c.take(a, 2).is_some());
    }
}
