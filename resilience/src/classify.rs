//! Which gRPC outcomes count as a backend failing.
//!
//! A breaker that opens on `NotFound` punishes a healthy backend for a
//! caller's typo; a limiter that backs off on `InvalidArgument` starves
//! good traffic. So every pattern asks the same question through one
//! classifier: did this call show the *backend* in trouble (failure), was
//! it fine as far as the backend goes (success), or does it say nothing at
//! all (ignored — the caller cancelled)?

use tonic::Code;

/// What one finished call says about the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    /// Neither: counts toward nothing (a cancelled call).
    Ignored,
}

/// Maps gRPC codes to outcomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrpcClassifier {
    failure: [bool; 17],
    ignored: [bool; 17],
}

impl Default for GrpcClassifier {
    /// Failures: the codes that mean "the server side is struggling" —
    /// `Unknown`, `DeadlineExceeded`, `ResourceExhausted`, `Internal`,
    /// `Unavailable`, `DataLoss`. Ignored: `Cancelled`. Everything else,
    /// including the caller's own mistakes, is a success for the backend.
    fn default() -> Self {
        Self::new(
            &[
                Code::Unknown,
                Code::DeadlineExceeded,
                Code::ResourceExhausted,
                Code::Internal,
                Code::Unavailable,
                Code::DataLoss,
            ],
            &[Code::Cancelled],
        )
    }
}

impl GrpcClassifier {
    pub fn new(failures: &[Code], ignored: &[Code]) -> Self {
        let mut classifier = Self {
            failure: [false; 17],
            ignored: [false; 17],
        };
        for &code in failures {
            classifier.failure[code as usize] = true;
        }
        for &code in ignored {
            classifier.ignored[code as usize] = true;
        }
        classifier
    }

    pub fn classify(&self, code: Code) -> Outcome {
        let index = code as usize;
        if self.ignored.get(index).copied().unwrap_or(false) {
            Outcome::Ignored
        } else if self.failure.get(index).copied().unwrap_or(true) {
            Outcome::Failure
        } else {
            Outcome::Success
        }
    }
}

/// The gRPC code a service error stands for, without consuming it: a
/// `Status` anywhere in its source chain, else `Unavailable` (an error
/// below gRPC — a refused connection, a reset stream — means the call did
/// not reach a working server).
pub fn code_of(error: &(dyn std::error::Error + 'static)) -> Code {
    let mut current = Some(error);
    while let Some(err) = current {
        if let Some(status) = err.downcast_ref::<tonic::Status>() {
            return status.code();
        }
        current = err.source();
    }
    Code::Unavailable
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_separates_backend_trouble_from_caller_mistakes() {
        let classifier = GrpcClassifier::default();
        assert_eq!(classifier.classify(Code::Unavailable), Outcome::Failure);
        assert_eq!(
            classifier.classify(Code::DeadlineExceeded),
            Outcome::Failure
        );
        assert_eq!(classifier.classify(Code::InvalidArgument), Outcome::Success);
        assert_eq!(classifier.classify(Code::NotFound), Outcome::Success);
        assert_eq!(classifier.classify(Code::Ok), Outcome::Success);
        assert_eq!(classifier.classify(Code::Cancelled), Outcome::Ignored);
    }
}
