/**
 * The processes that `exec` starts in a pod, on plain pipes or in a real pseudo-terminal.
 *
 * Why not node-pty's `spawn`: it loses the tail of the output of a process that prints a lot and exits while the
 * reader is busy (libuv ends the stream early, see drainSynchronously; node-pty also closes the pty 200 ms after the
 * exit whatever is left). So node-pty only opens the pty pair and resizes it here; the process is a plain
 * child_process made the session leader of the terminal by `setsid --ctty`, and its output ends when the kernel
 * says so (EIO: every holder of the terminal has closed it), after what the kernel still holds has been read.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { closeSync, readSync, write } from 'node:fs'
import { finished, PassThrough, type Readable, Writable } from 'node:stream'
import { ReadStream } from 'node:tty'
import * as pty from 'node-pty'
import type { PodExecOptions, PodProcess } from './contracts.js'

export type PodExit = Awaited<PodProcess['exited']>

/**
 * node-pty's native binding. Its `open` and `resize` are exported (`native`) but not typed, so declare what is used.
 * `open` gives both ends non-blocking and without close-on-exec, like node-pty's own `spawn` does for its master.
 */
interface NativePty {
  open(cols: number, rows: number): { master: number; slave: number; pty: string }
  resize(fd: number, cols: number, rows: number): void
}
const nativePty = (pty as unknown as { native: NativePty }).native

/**
 * After the process has exited, how long the terminal may stay silent before its output is ended anyway. Only a
 * leftover background process that keeps the terminal open delays the EIO that normally ends the output.
 */
const SILENCE_AFTER_EXIT_MS = 1_000
/** Retry pause when the terminal's input buffer is full (the process isn't reading its stdin). */
const WRITE_RETRY_MS = 5

/**
 * Starts `command` (argv) as a pod process: with a TTY, or on pipes. `env` is the whole environment of the started
 * program (pod processes get theirs from `env -i` inside the command; tests running the CLI in a terminal pass one).
 */
export function startPodProcess(command: string[], options: PodExecOptions, env: NodeJS.ProcessEnv = {}): PodProcess {
  return options.tty ? new PtyPodProcess(command, options, env) : new PipePodProcess(command, env)
}

/** A process on plain pipes: separate stdout and stderr; ending stdin gives it EOF. */
class PipePodProcess implements PodProcess {
  readonly pid: number
  readonly stdin: Writable
  readonly stdout: Readable
  readonly stderr: Readable
  readonly exited: Promise<PodExit>
  private readonly child: ChildProcess

  constructor(command: string[], env: NodeJS.ProcessEnv) {
    const [file, ...args] = command
    const child = spawn(file!, args, { stdio: ['pipe', 'pipe', 'pipe'], env })
    this.child = child
    this.pid = child.pid!
    this.stdin = child.stdin!
    this.stdout = child.stdout!
    this.stderr = child.stderr!
    // Input for a process that has exited is dropped, as the kubelet does; it is not the writer's error.
    this.stdin.on('error', () => {})
    // 'close' comes after the exit and after stdout and stderr have ended: no output is left behind.
    this.exited = new Promise((resolve, reject) => {
      child.once('error', reject)
      child.once('close', (code, signalName) => resolve({ code, signal: signalName }))
    })
  }

  resize(): void {}

  kill(signalName: NodeJS.Signals = 'SIGTERM'): void {
    this.child.kill(signalName)
  }
}

/** A process in a pseudo-terminal: stdout is the terminal's output (stdout and stderr), stdin is typed into it. */
class PtyPodProcess implements PodProcess {
  readonly pid: number
  readonly stdin: Writable
  readonly stdout = new PassThrough()
  readonly stderr = null
  readonly exited: Promise<PodExit>
  private readonly child: ChildProcess
  private readonly master: number
  private readonly reader: ReadStream
  private closed = false
  private silenceTimer: NodeJS.Timeout | undefined

  constructor(command: string[], options: PodExecOptions, env: NodeJS.ProcessEnv) {
    const { master, slave } = nativePty.open(options.cols ?? 80, options.rows ?? 24)
    this.master = master
    try {
      // --ctty: the terminal becomes the controlling terminal of the process's new session (job control, ^C,
      // SIGWINCH on resize). setsid doesn't fork here: a child of node is not a process group leader.
      this.child = spawn('setsid', ['--ctty', ...command], { stdio: [slave, slave, slave], env })
    } catch (error) {
      closeSync(master)
      throw error
    } finally {
      // Only the process may hold the terminal's slave end, or its EIO would never come.
      closeSync(slave)
    }
    this.pid = this.child.pid!
    this.reader = new ReadStream(master)
    this.reader.on('data', (chunk: Buffer) => this.onOutput(chunk))
    // A pty master reads EIO once every holder of the slave has closed it, and libuv may report an early 'end' (see
    // drainSynchronously): either way, what the kernel still holds is read before the output ends.
    this.reader.on('end', () => this.finishOutput())
    this.reader.on('error', (error: NodeJS.ErrnoException) =>
      error.code === 'EIO' ? this.finishOutput() : this.close(error),
    )
    this.stdin = new Writable({
      write: (chunk: Buffer, _encoding, callback) => this.type(chunk, callback),
    })
    const exit = new Promise<PodExit>((resolve, reject) => {
      this.child.once('error', (error) => {
        this.close()
        reject(error)
      })
      this.child.once('exit', (code, signalName) => {
        this.armSilenceTimer()
        resolve({ code, signal: signalName })
      })
    })
    const drained = new Promise<void>((resolve) => finished(this.stdout, () => resolve()))
    this.exited = Promise.all([exit, drained]).then(([result]) => result)
  }

  resize(cols: number, rows: number): void {
    if (!this.closed) nativePty.resize(this.master, cols, rows)
  }

  kill(signalName: NodeJS.Signals = 'SIGTERM'): void {
    this.child.kill(signalName)
  }

  private onOutput(chunk: Buffer): void {
    this.stdout.write(chunk)
    if (this.silenceTimer) this.armSilenceTimer()
  }

  /** Writes all of `chunk` to the terminal, waiting while its input buffer is full. */
  private type(chunk: Buffer, callback: (error?: Error | null) => void): void {
    if (this.closed) {
      callback()
      return
    }
    write(this.master, chunk, (error, written) => {
      if (error?.code === 'EAGAIN') setTimeout(() => this.type(chunk, callback), WRITE_RETRY_MS)
      // EIO: the process is gone; its input is dropped, as for the pipes.
      else if (error || written === chunk.length) callback()
      else this.type(chunk.subarray(written), callback)
    })
  }

  private armSilenceTimer(): void {
    clearTimeout(this.silenceTimer)
    this.silenceTimer = setTimeout(() => this.finishOutput(), SILENCE_AFTER_EXIT_MS)
  }

  private finishOutput(): void {
    if (this.closed) return
    this.drainSynchronously()
    this.close()
  }

  /**
   * Reads what the kernel still holds for the terminal. libuv takes a hangup (POLLHUP) after a read shorter than its
   * buffer for the end of the stream, but a pty master hands out at most 4 KiB per read, so up to the kernel's
   * buffer (~16 KiB) is left unread when the reader is slower than the writer (node-pty's own spawn loses it). Also
   * covers a silence timer that fired before the poll that would have delivered the last output.
   */
  private drainSynchronously(): void {
    const buffer = Buffer.alloc(64 * 1024)
    for (;;) {
      let length: number
      try {
        length = readSync(this.master, buffer)
      } catch {
        return // EIO: the end; EAGAIN: nothing more for now (a process still holds the terminal)
      }
      if (length === 0) return
      this.stdout.write(Buffer.from(buffer.subarray(0, length)))
    }
  }

  private close(error?: Error): void {
    if (this.closed) return
    this.closed = true
    clearTimeout(this.silenceTimer)
    this.reader.destroy() // closes the master: a process still attached gets a hangup
    if (error) this.stdout.destroy(error)
    else this.stdout.end()
  }
}
