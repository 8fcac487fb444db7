/**
 * The state a hook reads on its stdin (runtime-spec "State").
 */
export type ContainerStatus = 'creating' | 'created' | 'running' | 'stopped';

export interface HookState {
  ociVersion: string;
  id: string;
  status: ContainerStatus;
  /** Pid of the runtime process (this Node process) unless the caller knows a better one. */
  pid?: number;
  bundle: string;
  annotations?: Record<string, string>;
}
