#!/usr/bin/env node
// Installs what the sandbox and the tests need from the system on a fresh machine: OpenSSH's sshd and clients,
// rsync and openssl (Debian packages). It installs only when something is missing and it is allowed to (root, or
// passwordless sudo); otherwise it says exactly what to install and fails.
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'

const needed = [
  { path: '/usr/sbin/sshd', pkg: 'openssh-server' },
  { path: '/usr/bin/ssh', pkg: 'openssh-client' },
  { path: '/usr/bin/rsync', pkg: 'rsync' },
  { path: '/usr/bin/openssl', pkg: 'openssl' },
  { path: '/usr/bin/nsenter', pkg: 'util-linux' },
]
const missing = needed.filter((item) => !existsSync(item.path))
if (missing.length > 0) {
  const packages = [...new Set(missing.map((item) => item.pkg))]
  const isRoot = process.getuid?.() === 0
  const sudo = isRoot ? [] : spawnSync('sudo', ['-n', 'true']).status === 0 ? ['sudo', '-n'] : undefined
  if (!sudo || !existsSync('/usr/bin/apt-get')) {
    console.error(`setup: missing ${packages.join(', ')}. Install with: sudo apt-get install -y ${packages.join(' ')}`)
    process.exit(1)
  }
  console.error(`setup: installing ${packages.join(', ')} with apt-get`)
  const run = (args) => {
    const [command, ...rest] = [...sudo, ...args]
    execFileSync(command, rest, { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } })
  }
  run(['apt-get', 'update', '-qq'])
  run(['apt-get', 'install', '-y', '-qq', '--no-install-recommends', ...packages])
}
if (process.getuid?.() !== 0) {
  console.error('setup: the sandbox runs the management pod in private namespaces (unshare, nsenter) and needs root.')
  process.exit(1)
}
