/** Sandbox networking: a VM wired to its netns's interfaces (Kata's tcfilter model). */
export { connectSandboxNetwork, type ConnectedInterface, type NetAttachable, type SandboxNetwork } from './connect.js';
export { listInterfaces, listNeighbors, listRoutes, TAP_PREFIX, type IpAddress, type Neighbor, type NetnsInterface, type Route } from './interfaces.js';
export { configureGuestNetwork, type GuestNetworkResult } from './guest.js';
