//! Errors at the boundary: one typed enum, its fixed `baton_result` code, the per-thread
//! last message, and the one panic boundary every exported function runs inside.

use crate::types::baton_result;
use baton_sdk::session::{CallError, ConfigError, SessionError};
use baton_sdk::transport::{InviteError, NetError, TransportError};
use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Why a call failed, with what the caller needs to fix it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("`{0}` is NULL")]
    Null(&'static str),
    #[error("session handle {0:#x} was never issued, was freed, or is stale")]
    Handle(u64),
    #[error("`{name}`: {reason}")]
    Argument { name: &'static str, reason: String },
    #[error(transparent)]
    Call(#[from] CallError),
    #[error("the library implements ABI version {library}; the caller was built against {caller}")]
    Abi { library: u32, caller: u32 },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("invalid invite: {0}")]
    Invite(#[from] InviteError),
    #[error("the buffer holds {capacity} bytes; {needed} are needed")]
    BufferTooSmall { capacity: usize, needed: usize },
    #[error("the session has not started yet")]
    NotReady,
    #[error(
        "this session does not run over the application's network (no `net_addr` in its config)"
    )]
    NoAppNet,
    #[error(transparent)]
    Net(#[from] NetError),
    #[error("panic inside libbaton: {0}")]
    Panic(String),
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error("identity: {0}")]
    Identity(#[from] TransportError),
}

impl Error {
    pub(crate) fn argument(name: &'static str, reason: impl Into<String>) -> Error {
        Error::Argument {
            name,
            reason: reason.into(),
        }
    }

    pub(crate) fn code(&self) -> baton_result {
        match self {
            Error::Null(_) => baton_result::NullPointer,
            Error::Handle(_) => baton_result::InvalidHandle,
            Error::Argument { .. } => baton_result::InvalidArgument,
            Error::Call(call) => call_code(call),
            Error::Abi { .. } => baton_result::AbiMismatch,
            Error::Config(_) => baton_result::InvalidConfig,
            Error::Invite(_) => baton_result::InvalidInvite,
            Error::BufferTooSmall { .. } => baton_result::BufferTooSmall,
            Error::NotReady => baton_result::NotReady,
            Error::NoAppNet => baton_result::NoAppNet,
            Error::Net(net) => match net {
                NetError::WouldBlock => baton_result::WouldBlock,
                NetError::DatagramLength { .. } => baton_result::TooLarge,
                NetError::BufferTooSmall { .. } => baton_result::BufferTooSmall,
                _ => baton_result::InvalidArgument,
            },
            Error::Panic(_) => baton_result::Panic,
            Error::Session(SessionError::Config(_)) => baton_result::InvalidConfig,
            Error::Session(SessionError::Call(call)) => call_code(call),
            Error::Session(SessionError::Fatal(_)) => baton_result::Stopped,
            Error::Session(_) | Error::Identity(_) => baton_result::Io,
        }
    }
}

fn call_code(call: &CallError) -> baton_result {
    match call {
        CallError::WouldBlock => baton_result::WouldBlock,
        CallError::InputTooLarge { .. } | CallError::PayloadTooLarge { .. } => {
            baton_result::TooLarge
        }
        CallError::NoSuchRequest(_) => baton_result::NoSuchRequest,
        CallError::Leaving => baton_result::Leaving,
        CallError::Stopped => baton_result::Stopped,
    }
}

thread_local! {
    /// The message of the last failed call on this thread.
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

/// The last failure's message on this thread (empty if none yet).
pub(crate) fn last_message() -> String {
    LAST_ERROR.with(|last| last.borrow().clone())
}

pub(crate) fn remember(message: String) {
    LAST_ERROR.with(|last| *last.borrow_mut() = message);
}

/// Runs one exported function's body: a failure is remembered for
/// `baton_last_error_message` and becomes its code, and a panic stops here instead of
/// unwinding into the caller's frames (which aborts the process).
pub(crate) fn boundary(body: impl FnOnce() -> Result<(), Error>) -> baton_result {
    let failure = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => return baton_result::Ok,
        Ok(Err(error)) => error,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|text| text.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_string());
            Error::Panic(message)
        }
    };
    tracing::debug!(error = %failure, "libbaton call failed");
    let code = failure.code();
    remember(failure.to_string());
    code
}
