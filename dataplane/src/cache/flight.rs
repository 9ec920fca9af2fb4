//! Single-flight: concurrent requests for the same missing variant share one origin fetch and
//! one ffmpeg run, and every one of them streams the bytes as they are produced.
//!
//! The leader's producer appends the output to a spool file and announces how many bytes are
//! written; readers (the leader's own request included) read the file at their own offset with
//! positional reads, so memory stays bounded by one chunk per reader whatever the output size,
//! and the spool can be renamed or unlinked (handed to the cache) without disturbing them.
//!
//! When the last reader goes away before the output is complete, the flight is *abandoned*:
//! the producer is told to stop (and kills ffmpeg), and the next request starts a new flight.

use bytes::Bytes;
use std::collections::HashMap;
use std::hash::Hash;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::watch;

/// Largest chunk handed to a reader at once.
pub const READ_CHUNK: usize = 256 * 1024;

/// The flights in progress, by key.
pub struct Flights<K, T, E> {
    map: Mutex<HashMap<K, Arc<Flight<T, E>>>>,
}

/// What [`Flights::join`] made of the caller.
pub enum Joined<T, E> {
    /// Nobody was producing this key: the caller must run the producer.
    Leader(Producer<T, E>, Reader<T, E>),
    /// Somebody is: the caller reads their output.
    Follower(Reader<T, E>),
}

/// One shared production.
pub struct Flight<T, E> {
    state: Mutex<State<T, E>>,
    version: watch::Sender<u64>,
}

struct State<T, E> {
    spool: Option<Arc<std::fs::File>>,
    content_type: Option<String>,
    written: u64,
    outcome: Option<Result<T, E>>,
    readers: usize,
    abandoned: bool,
}

/// The producer's handle (held by the leader's task).
pub struct Producer<T, E> {
    flight: Arc<Flight<T, E>>,
}

/// A reader's handle: counts as a waiter until dropped.
pub struct Reader<T, E> {
    flight: Arc<Flight<T, E>>,
    rx: watch::Receiver<u64>,
    offset: u64,
}

/// What a reader sees first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start<T, E> {
    /// Output has begun (bytes may follow), with its content type.
    Streaming { content_type: String },
    /// Production ended before any byte was announced.
    Finished(Result<T, E>),
}

fn lock<X>(m: &Mutex<X>) -> MutexGuard<'_, X> {
    // A poisoned lock only means another thread panicked mid-update of plain counters; the
    // state is still consistent enough to read, and refusing would wedge every reader.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<K: Eq + Hash + Clone, T: Clone, E: Clone> Default for Flights<K, T, E> {
    fn default() -> Self {
        Flights {
            map: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash + Clone, T: Clone, E: Clone> Flights<K, T, E> {
    /// Joins the flight for `key`, or starts one.
    pub fn join(&self, key: &K) -> Joined<T, E> {
        let mut map = lock(&self.map);
        if let Some(f) = map.get(key) {
            let mut st = lock(&f.state);
            if !st.abandoned && !matches!(st.outcome, Some(Err(_))) {
                st.readers += 1;
                drop(st);
                return Joined::Follower(Reader::new(f.clone()));
            }
        }
        let (version, _) = watch::channel(0);
        let flight = Arc::new(Flight {
            state: Mutex::new(State {
                spool: None,
                content_type: None,
                written: 0,
                outcome: None,
                readers: 1,
                abandoned: false,
            }),
            version,
        });
        map.insert(key.clone(), flight.clone());
        Joined::Leader(
            Producer {
                flight: flight.clone(),
            },
            Reader::new(flight),
        )
    }

    /// Removes the flight for `key` if it is `producer`'s (call after the result is cached, so
    /// that later requests find the cache instead).
    pub fn remove(&self, key: &K, producer: &Producer<T, E>) {
        let mut map = lock(&self.map);
        if map
            .get(key)
            .is_some_and(|f| Arc::ptr_eq(f, &producer.flight))
        {
            map.remove(key);
        }
    }

    /// Flights in progress.
    pub fn len(&self) -> usize {
        lock(&self.map).len()
    }

    /// Whether no flight is in progress.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T: Clone, E: Clone> Flight<T, E> {
    fn bump(&self) {
        self.version.send_modify(|v| *v = v.wrapping_add(1));
    }
}

impl<T: Clone, E: Clone> Producer<T, E> {
    /// Announces the spool file (opened for reading) and the content type. Call once, before
    /// the first [`Producer::advance`].
    pub fn start(&self, spool: Arc<std::fs::File>, content_type: String) {
        let mut st = lock(&self.flight.state);
        st.spool = Some(spool);
        st.content_type = Some(content_type);
        drop(st);
        self.flight.bump();
    }

    /// Announces that `n` more bytes are in the spool file.
    pub fn advance(&self, n: u64) {
        lock(&self.flight.state).written += n;
        self.flight.bump();
    }

    /// Ends the flight with a result.
    pub fn finish(&self, outcome: Result<T, E>) {
        lock(&self.flight.state).outcome = Some(outcome);
        self.flight.bump();
    }

    /// Bytes announced so far.
    pub fn written(&self) -> u64 {
        lock(&self.flight.state).written
    }

    /// Whether every reader has gone (the producer should stop).
    pub fn is_abandoned(&self) -> bool {
        lock(&self.flight.state).abandoned
    }

    /// Resolves when every reader has gone.
    pub async fn abandoned(&self) {
        let mut rx = self.flight.version.subscribe();
        loop {
            if self.is_abandoned() {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }
}

impl<T: Clone, E: Clone> Reader<T, E> {
    fn new(flight: Arc<Flight<T, E>>) -> Self {
        let rx = flight.version.subscribe();
        Reader {
            flight,
            rx,
            offset: 0,
        }
    }

    /// Waits until output begins or production ends.
    pub async fn start(&mut self) -> Start<T, E> {
        loop {
            {
                let st = lock(&self.flight.state);
                if let Some(ct) = &st.content_type {
                    if st.written > 0 || matches!(st.outcome, Some(Ok(_))) {
                        return Start::Streaming {
                            content_type: ct.clone(),
                        };
                    }
                }
                if let Some(o) = &st.outcome {
                    return Start::Finished(o.clone());
                }
            }
            if self.rx.changed().await.is_err() {
                // The flight is gone without an outcome: cannot happen while we hold it.
                continue;
            }
        }
    }

    /// Waits until production ends and returns its outcome.
    pub async fn outcome(&mut self) -> Result<T, E> {
        loop {
            if let Some(o) = &lock(&self.flight.state).outcome {
                return o.clone();
            }
            let _ = self.rx.changed().await;
        }
    }

    /// Waits until the first `want` bytes of output exist, or production ends, whichever comes
    /// first: a range whose bytes are already written is answered without waiting for the rest.
    pub async fn until(&mut self, want: u64) -> Progress<T, E> {
        loop {
            {
                let st = lock(&self.flight.state);
                if let Some(o) = &st.outcome {
                    return Progress::Finished(o.clone());
                }
                if let (Some(spool), true) = (&st.spool, st.written >= want) {
                    return Progress::Available {
                        spool: spool.clone(),
                        written: st.written,
                    };
                }
            }
            let _ = self.rx.changed().await;
        }
    }

    /// The content type announced by the producer, once it has started.
    pub fn content_type(&self) -> Option<String> {
        lock(&self.flight.state).content_type.clone()
    }

    /// The spool file (for serving a finished flight, e.g. with a range).
    pub fn spool(&self) -> Option<(Arc<std::fs::File>, u64)> {
        let st = lock(&self.flight.state);
        st.spool.clone().map(|f| (f, st.written))
    }

    /// The next chunk of output: `Some(Ok(bytes))`, `Some(Err(e))` if production failed, or
    /// `None` once everything has been read and production succeeded.
    pub async fn next(&mut self) -> Option<Result<Bytes, NextError<E>>> {
        loop {
            let (spool, available, outcome) = {
                let st = lock(&self.flight.state);
                (st.spool.clone(), st.written, st.outcome.clone())
            };
            if available > self.offset {
                let Some(file) = spool else {
                    return Some(Err(NextError::Io("spool missing".into())));
                };
                let want = (available - self.offset).min(READ_CHUNK as u64) as usize;
                let offset = self.offset;
                let read = tokio::task::spawn_blocking(move || {
                    let mut buf = vec![0u8; want];
                    let mut filled = 0;
                    while filled < want {
                        match file.read_at(&mut buf[filled..], offset + filled as u64) {
                            Ok(0) => break,
                            Ok(n) => filled += n,
                            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                            Err(e) => return Err(e),
                        }
                    }
                    buf.truncate(filled);
                    Ok(buf)
                })
                .await;
                return match read {
                    Ok(Ok(buf)) if !buf.is_empty() => {
                        self.offset += buf.len() as u64;
                        Some(Ok(Bytes::from(buf)))
                    }
                    Ok(Ok(_)) => Some(Err(NextError::Io("spool shorter than announced".into()))),
                    Ok(Err(e)) => Some(Err(NextError::Io(e.to_string()))),
                    Err(e) => Some(Err(NextError::Io(e.to_string()))),
                };
            }
            match outcome {
                Some(Ok(_)) => return None,
                Some(Err(e)) => return Some(Err(NextError::Failed(e))),
                None => {}
            }
            if self.rx.changed().await.is_err() {
                return Some(Err(NextError::Io("flight dropped".into())));
            }
        }
    }
}

/// What [`Reader::until`] found.
#[derive(Debug, Clone)]
pub enum Progress<T, E> {
    /// At least the asked-for bytes are in the spool; `written` is how many exist in all.
    /// Bytes already written never change (the output is only appended to).
    Available {
        spool: Arc<std::fs::File>,
        written: u64,
    },
    /// Production ended (before or after reaching the asked-for bytes).
    Finished(Result<T, E>),
}

/// Why a reader could not get the next chunk.
#[derive(Debug, Clone)]
pub enum NextError<E> {
    /// Production failed.
    Failed(E),
    /// Reading the spool failed.
    Io(String),
}

impl<T, E> Drop for Reader<T, E> {
    fn drop(&mut self) {
        let mut st = lock(&self.flight.state);
        st.readers = st.readers.saturating_sub(1);
        if st.readers == 0 && st.outcome.is_none() {
            st.abandoned = true;
            drop(st);
            self.flight.version.send_modify(|v| *v = v.wrapping_add(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    type F = Flights<u32, u64, String>;

    fn spool() -> (tempfile::NamedTempFile, Arc<std::fs::File>) {
        let f = tempfile::NamedTempFile::new().expect("temp");
        let r = Arc::new(f.reopen().expect("reopen"));
        (f, r)
    }

    #[tokio::test]
    async fn followers_join_the_leader_and_stream_the_same_bytes() {
        let flights = F::default();
        let Joined::Leader(producer, mut leader) = flights.join(&1) else {
            panic!("first join leads");
        };
        let Joined::Follower(mut follower) = flights.join(&1) else {
            panic!("second join follows");
        };
        let (mut w, r) = spool();
        producer.start(r, "video/mp4".into());
        w.write_all(b"hello ").expect("write");
        producer.advance(6);
        assert_eq!(
            follower.start().await,
            Start::Streaming {
                content_type: "video/mp4".into()
            }
        );
        assert_eq!(
            follower.next().await.expect("chunk").expect("ok"),
            Bytes::from_static(b"hello ")
        );
        w.write_all(b"world").expect("write");
        producer.advance(5);
        producer.finish(Ok(11));
        let mut all = Vec::new();
        while let Some(c) = leader.next().await {
            all.extend_from_slice(&c.expect("ok"));
        }
        assert_eq!(all, b"hello world");
        assert_eq!(
            follower.next().await.expect("chunk").expect("ok"),
            Bytes::from_static(b"world")
        );
        assert!(follower.next().await.is_none());
    }

    #[tokio::test]
    async fn a_failure_before_any_byte_reaches_every_reader_as_finished() {
        let flights = F::default();
        let Joined::Leader(producer, mut a) = flights.join(&7) else {
            panic!()
        };
        let Joined::Follower(mut b) = flights.join(&7) else {
            panic!()
        };
        producer.finish(Err("bad input".into()));
        assert_eq!(a.start().await, Start::Finished(Err("bad input".into())));
        assert_eq!(b.start().await, Start::Finished(Err("bad input".into())));
    }

    #[tokio::test]
    async fn the_last_reader_leaving_abandons_the_flight_and_the_next_join_leads() {
        let flights = F::default();
        let Joined::Leader(producer, a) = flights.join(&3) else {
            panic!()
        };
        let Joined::Follower(b) = flights.join(&3) else {
            panic!()
        };
        drop(a);
        assert!(!producer.is_abandoned());
        drop(b);
        producer.abandoned().await;
        assert!(producer.is_abandoned());
        assert!(matches!(flights.join(&3), Joined::Leader(..)));
    }

    #[tokio::test]
    async fn until_answers_once_the_bytes_exist_or_production_ends() {
        let flights = F::default();
        let Joined::Leader(producer, mut reader) = flights.join(&9) else {
            panic!()
        };
        let (mut w, r) = spool();
        producer.start(r, "video/mp4".into());
        w.write_all(b"0123").expect("write");
        producer.advance(4);
        // Bytes 0..=3 exist: answered at once, with everything written so far.
        match reader.until(4).await {
            Progress::Available { written, .. } => assert_eq!(written, 4),
            Progress::Finished(_) => panic!("not finished"),
        }
        // Byte 5 does not exist yet: the wait ends when it does.
        let waiting = tokio::spawn(async move {
            let p = reader.until(6).await;
            (p, reader)
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        w.write_all(b"456789").expect("write");
        producer.advance(6);
        let (p, mut reader) = waiting.await.expect("task");
        match p {
            Progress::Available { spool, written } => {
                assert_eq!(written, 10);
                let mut buf = [0u8; 2];
                spool.read_exact_at(&mut buf, 4).expect("read");
                assert_eq!(&buf, b"45");
            }
            Progress::Finished(_) => panic!("not finished"),
        }
        // Past the end of what is finally written: the outcome.
        producer.finish(Ok(10));
        assert!(matches!(reader.until(11).await, Progress::Finished(Ok(10))));
    }

    #[tokio::test]
    async fn a_removed_flight_is_not_joined_again() {
        let flights = F::default();
        let Joined::Leader(producer, _r) = flights.join(&5) else {
            panic!()
        };
        producer.finish(Ok(0));
        flights.remove(&5, &producer);
        assert!(flights.is_empty());
        assert!(matches!(flights.join(&5), Joined::Leader(..)));
    }
}
