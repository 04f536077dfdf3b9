//! Clients of a [`ReadWriteSplit`], as the history recorder wants them:
//! one carrying its session token, and the twin that does not.

use tonic::Status;

use super::{Position, ReadWriteSplit};
use crate::consistency::recorder::{ClientError, KvClient};

fn client_error(err: crate::Error) -> ClientError {
    ClientError::from_status(&Status::from(err))
}

/// A session that keeps read-your-writes and monotonic reads: it sends
/// the largest log position it has seen with every read.
#[derive(Clone, Debug)]
pub struct Session {
    split: ReadWriteSplit,
    token: Position,
}

impl Session {
    pub fn new(split: ReadWriteSplit) -> Self {
        Self {
            split,
            token: Position(0),
        }
    }

    /// The session token: the newest log position this session has seen.
    pub fn token(&self) -> Position {
        self.token
    }

    fn saw(&mut self, position: Position) {
        self.token = self.token.max(position);
    }
}

impl KvClient for Session {
    async fn get(&mut self, key: &str) -> Result<String, ClientError> {
        let reply = self
            .split
            .read(key, Some(self.token))
            .await
            .map_err(client_error)?;
        // What this read saw, the next one must see too.
        self.saw(reply.position);
        Ok(reply.value)
    }

    async fn put(&mut self, key: &str, value: &str) -> Result<(), ClientError> {
        let position = self.split.put(key, value).map_err(client_error)?;
        self.saw(position);
        Ok(())
    }

    async fn append(&mut self, key: &str, value: &str) -> Result<(), ClientError> {
        let position = self.split.append(key, value).map_err(client_error)?;
        self.saw(position);
        Ok(())
    }
}

/// The broken twin: the same split, read without a token. Whichever
/// replica is next answers, caught up or not.
#[derive(Clone, Debug)]
pub struct NaiveSession {
    split: ReadWriteSplit,
}

impl NaiveSession {
    pub fn new(split: ReadWriteSplit) -> Self {
        Self { split }
    }
}

impl KvClient for NaiveSession {
    /// Pitfall: the write's position is thrown away, so nothing stops a
    /// lagging replica from answering this client's next read.
    async fn get(&mut self, key: &str) -> Result<String, ClientError> {
        let reply = self.split.read(key, None).await.map_err(client_error)?;
        Ok(reply.value)
    }

    async fn put(&mut self, key: &str, value: &str) -> Result<(), ClientError> {
        self.split.put(key, value).map(drop).map_err(client_error)
    }

    async fn append(&mut self, key: &str, value: &str) -> Result<(), ClientError> {
        self.split
            .append(key, value)
            .map(drop)
            .map_err(client_error)
    }
}
