//! Reading frames off a QUIC receive stream with the decoder's checks applied before any
//! allocation sized by the peer.

use quinn::{ReadExactError, RecvStream};

use super::frame::{
    check_length, parse_header, FrameError, FrameHeader, RawFrame, HEADER_BYTES,
    LENGTH_PREFIX_BYTES,
};

/// Why no frame could be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadFrameError {
    /// The peer sent something that is not a valid frame.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The stream or connection failed.
    #[error("stream failed: {0}")]
    Stream(String),
}

fn stream_error(e: ReadExactError, needed: usize) -> ReadFrameError {
    match e {
        ReadExactError::FinishedEarly(got) => ReadFrameError::Frame(FrameError::Truncated {
            needed,
            available: got,
        }),
        ReadExactError::ReadError(e) => ReadFrameError::Stream(e.to_string()),
    }
}

/// Reads the next frame. `Ok(None)` means the peer finished its stream cleanly between frames.
pub async fn read_frame(
    recv: &mut RecvStream,
    max_frame_bytes: usize,
) -> Result<Option<RawFrame>, ReadFrameError> {
    let mut fixed = [0u8; LENGTH_PREFIX_BYTES + HEADER_BYTES];
    match recv.read_exact(&mut fixed[..LENGTH_PREFIX_BYTES]).await {
        Ok(()) => {}
        Err(ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(e) => return Err(stream_error(e, LENGTH_PREFIX_BYTES)),
    }
    // Reject an oversized length before waiting for (or allocating) anything more.
    check_length([fixed[0], fixed[1], fixed[2], fixed[3]], max_frame_bytes)?;
    recv.read_exact(&mut fixed[LENGTH_PREFIX_BYTES..])
        .await
        .map_err(|e| stream_error(e, LENGTH_PREFIX_BYTES + HEADER_BYTES))?;
    let header: FrameHeader = parse_header(&fixed, max_frame_bytes)?;
    let mut payload = vec![0u8; header.payload_len()];
    recv.read_exact(&mut payload)
        .await
        .map_err(|e| stream_error(e, LENGTH_PREFIX_BYTES + header.length as usize))?;
    Ok(Some(RawFrame { header, payload }))
}
