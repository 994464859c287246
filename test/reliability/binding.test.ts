/**
 * Every listener akm-access opens is on loopback: read from the kernel (/proc/net/tcp{,6} and the fds of every
 * process of the run) while each command runs, and proven from the outside by connecting to the machine's own
 * non-loopback address, which must be refused. Commands that need no listener (shell, proxy, cp, ssh --no-tunnel)
 * open none; doctor's local-port check binds 127.0.0.1:2222 for an instant.
 */

import { createConnection } from 'node:net'
import { networkInterfaces } from 'node:os'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { Terminal } from '../helpers/cli.js'
import { Sandbox } from '../sandbox/index.js'
import {
  type CliRun,
  cliInTerminalWithModes,
  expectCleanAfter,
  type Listener,
  listenersOf,
  nextRun,
  processesOf,
  type RunEnv,
  runEnv,
  runToEnd,
  startCli,
} from './harness.js'

let sandbox: Sandbox
let seeded: RunEnv
const running: CliRun[] = []
const terminals: Terminal[] = []
/** An address of this machine that is not loopback (eth0): a listener on 0.0.0.0 or :: would answer on it. */
const outside = Object.values(networkInterfaces())
  .flat()
  .find((address) => address && !address.internal && address.family === 'IPv4')?.address

beforeAll(async () => {
  sandbox = await Sandbox.start()
  seeded = runEnv(sandbox.kubeconfigPath)
  expect((await runToEnd(['ssh', '--no-tunnel', '--accept-new-host-key', '--', 'true'], seeded)).status).toBe(0)
})
afterEach(() => {
  for (const process of running.splice(0)) process.kill()
  for (const terminal of terminals.splice(0)) terminal.kill()
  sandbox.clearFaults()
})
afterAll(async () => {
  await sandbox?.stop()
})

function listenersOfRun(run: RunEnv): Listener[] {
  return listenersOf(processesOf(run.marker).map((info) => info.pid))
}

function refusedFrom(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: address, port })
    socket.once('connect', () => {
      socket.destroy()
      resolve(false)
    })
    socket.once('error', () => resolve(true))
  })
}

async function expectLoopbackOnly(run: RunEnv, expectedPorts: number[]): Promise<void> {
  const listeners = listenersOfRun(run)
  expect(listeners.map((listener) => listener.port).sort()).toEqual([...expectedPorts].sort())
  for (const listener of listeners) expect(listener, 'a listener off loopback').toMatchObject({ address: '127.0.0.1' })
  if (outside) {
    for (const port of expectedPorts) expect(await refusedFrom(outside, port), `${outside}:${port} answered`).toBe(true)
  }
}

describe('listeners', () => {
  it('forward: one listener, on 127.0.0.1, for --port 0 and for its default port', async () => {
    for (const args of [['--port', '0'], []]) {
      const run = nextRun(seeded)
      const forward = startCli(['forward', ...args], run)
      running.push(forward)
      const port = Number((await forward.waitFor(/Forwarding from 127\.0\.0\.1:(\d+)/, { stream: 'stdout' }))[1])
      await expectLoopbackOnly(run, [port])
      forward.kill('SIGTERM')
      expect(await forward.status()).toBe(0)
      await expectCleanAfter(run)
    }
  })

  it('ssh: its tunnel for other tools on 127.0.0.1, and nothing with --no-tunnel', async () => {
    const run = nextRun(seeded)
    const terminal = cliInTerminalWithModes(['ssh', '--port', '0'], run)
    terminals.push(terminal)
    const port = Number((await terminal.waitFor(/tunnel: 127\.0\.0\.1:(\d+)/)).match(/tunnel: 127\.0\.0\.1:(\d+)/)![1])
    await terminal.waitFor(/\$ $/m)
    await expectLoopbackOnly(run, [port])
    terminal.type('exit\r')
    await terminal.waitFor('modes-done')

    const quiet = nextRun(seeded)
    const session = startCli(['ssh', '--no-tunnel', '--', 'echo up; sleep 30'], quiet)
    running.push(session)
    await session.waitFor(/up/, { stream: 'stdout' })
    await expectLoopbackOnly(quiet, [])
    session.kill('SIGTERM')
    expect(await session.status()).toBe(143)
    await expectCleanAfter(run)
    await expectCleanAfter(quiet)
  })

  it('shell, proxy and cp open no listener at all; doctor only a loopback one, for a moment', async () => {
    const cases: { args: string[]; ready: RegExp; stream: 'stdout' | 'stderr' }[] = [
      { args: ['shell', '--', 'sh', '-c', 'echo up; sleep 30'], ready: /up/, stream: 'stdout' },
      { args: ['proxy'], ready: /SSH-2\.0-/, stream: 'stdout' },
    ]
    for (const { args, ready, stream } of cases) {
      const run = nextRun(seeded)
      const process = startCli(args, run, { keepStdin: true })
      running.push(process)
      await process.waitFor(ready, { stream })
      await expectLoopbackOnly(run, [])
      process.kill('SIGTERM')
      await process.status()
      await expectCleanAfter(run)
    }
    // Short-lived ones: sampled while they run (a listener would show in any sample).
    for (const args of [['cp', ':/etc/hostname', `${seeded.tmp}/`], ['doctor']]) {
      const run = nextRun(seeded)
      const process = startCli(args, run)
      running.push(process)
      const seen: Listener[] = []
      const sampler = setInterval(() => seen.push(...listenersOfRun(run)), 10)
      await process.status(30_000)
      clearInterval(sampler)
      if (args[0] === 'doctor') {
        // Its local-port check binds 127.0.0.1:2222 for an instant, to see whether ssh's tunnel could.
        for (const listener of seen) expect(listener).toMatchObject({ address: '127.0.0.1', port: 2222 })
      } else {
        expect({ command: args[0], seen }).toEqual({ command: args[0], seen: [] })
      }
      await expectCleanAfter(run)
    }
  })
})
