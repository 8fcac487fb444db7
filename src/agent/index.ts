/** The agent protocol on the host side: framing and a client. See docs/protocol.md. */
export * from './frame.js';
export * from './messages.js';
export * from './client.js';
export * from './process.js';
