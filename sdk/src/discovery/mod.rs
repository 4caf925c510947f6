//! LAN discovery (placeholder).
