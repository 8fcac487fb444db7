// Public surface of nodevisor. Only exports live here; each name is defined in its layer.
export { NodevisorError, type NodevisorErrorDetails } from './errors.js';
export { addon as nativeAddon, type BuildInfo } from './native/binding.js';
