/**
 * Terminals (`process.terminal`, `--console-socket`), as runc gives them: the runtime makes a
 * pseudo-terminal and sends its master to the caller's console socket as an SCM_RIGHTS message
 * (the shim then copies between the master and its fifos, and resizes it). Node cannot pass a
 * file descriptor over a unix socket, so a tiny python3 helper (no native code) does that part:
 * it opens the pty, sends the master, puts the slave on its fds 0-2 and replaces itself with
 * the relay, which keeps its pid (the pid the shim watches). The relay then carries the
 * container's stdio over the pty.
 *
 * The agent gives containers pipes, not a terminal: the container's process sees no tty
 * (isatty is false, no job control); its output and input still flow through the pty.
 */

/** python3 -c HELPER <console socket> <program> <args...> */
export const CONSOLE_HELPER = `
import os, socket, sys, termios
path = sys.argv[1]
master, slave = os.openpty()
# As runc: no CR before each LF on output (the shim's side of the pty adds none either).
attrs = termios.tcgetattr(slave)
attrs[1] &= ~termios.ONLCR
termios.tcsetattr(slave, termios.TCSANOW, attrs)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(path)
socket.send_fds(s, [os.ttyname(slave).encode()], [master])
s.close()
os.close(master)
for fd in (0, 1, 2):
    os.dup2(slave, fd)
if slave > 2:
    os.close(slave)
os.execv(sys.argv[2], sys.argv[2:])
`;

/** The command that runs `argv` with a pty whose master went to `consoleSocket`. */
export function withConsole(consoleSocket: string, argv: readonly string[]): { command: string; args: string[] } {
  return { command: 'python3', args: ['-c', CONSOLE_HELPER, consoleSocket, ...argv] };
}
