/** Sandbox networking: a VM wired to its netns's interfaces (Kata's tcfilter model). */
export { connectSandboxNetwork, type ConnectedInterface, type NetAttachable, type SandboxNetwork } from './connect.js';
export { listInterfaces, listRoutes, TAP_PREFIX, type IpAddress, type NetnsInterface, type Route } from './interfaces.js';
