// The netns layer: lifecycle (netns.ts), running code inside (enter.ts), Kata's setup (setup.ts).
export {
  createNetNs,
  currentNetNsIdentity,
  deleteNetNs,
  DEFAULT_NETNS_DIR,
  netNsIdentity,
  sameNetNs,
  type CreateNetNsOptions,
  type NsIdentity,
} from './netns.js';
export { enterNetNs } from './enter.js';
export { hostNetworkingRequested, setupNetworkNamespace } from './setup.js';
