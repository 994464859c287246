/**
 * `npm run sandbox`: start the sandbox in the foreground so that a person can try every command against it.
 * `npm run demo`: the same, then open an interactive session into its management pod and stop when it ends.
 */
import { spawn } from 'node:child_process'
import { join, resolve } from 'node:path'
import { Sandbox } from './index.js'

const demo = process.argv.includes('--demo')
const sandbox = await Sandbox.start()
let stopping = false
async function stop(code: number): Promise<never> {
  if (!stopping) {
    stopping = true
    await sandbox.stop()
  }
  process.exit(code)
}
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => void stop(130))

const bin = resolve('bin/run.js')
if (demo) {
  process.stderr.write(`sandbox: Kubernetes API at ${sandbox.url}, management pod ${sandbox.currentPodName}\n`)
  process.stderr.write('demo: akm-access ssh — Secret, tunnel, host key and session in one command (exit to leave)\n\n')
  // The sandbox's host key lives as long as the sandbox: keep it out of the user's own known_hosts.
  const knownHosts = join(sandbox.dir, 'known_hosts')
  const child = spawn(process.execPath, [bin, 'ssh', '--known-hosts', knownHosts], {
    stdio: 'inherit',
    env: { ...process.env, KUBECONFIG: sandbox.kubeconfigPath },
  })
  // The demo's own Ctrl-C belongs to the session: let the child handle it.
  process.removeAllListeners('SIGINT')
  process.on('SIGINT', () => {})
  child.on('exit', (code) => void stop(code ?? 1))
} else {
  process.stdout.write(
    [
      `Sandbox Kubernetes API server: ${sandbox.url} (Kubernetes v1.32, namespace ${sandbox.namespace})`,
      `Management pod: ${sandbox.currentPodName} (sshd on 127.0.0.1:${sandbox.runtime(sandbox.currentPodName).sshPort}, /work = ${sandbox.workDir})`,
      '',
      'In another terminal:',
      `  export KUBECONFIG=${sandbox.kubeconfigPath}`,
      `  ${bin} ssh              # SSH into the management pod (tunnel on 127.0.0.1:2222)`,
      `  ${bin} shell            # a shell in the management pod`,
      `  ${bin} password         # the SSH password from the Secret`,
      '  kubectl get pods',
      '  kubectl exec -it deploy/management-pod -- bash',
      '',
      'Press Ctrl-C to stop the sandbox.',
      '',
    ].join('\n'),
  )
}
