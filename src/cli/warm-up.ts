/**
 * Started by bin/run.js before oclif loads: when the command line names a command that will talk to the API server,
 * resolve the kubeconfig as the command will (only --kubeconfig and --context decide which server and credentials)
 * and open the connections its first requests need (kube/warm-connections.ts). With a remote cluster the TCP and
 * TLS handshakes then run while Node loads oclif and the command. Best effort and silent: anything unusual (help,
 * docker, no kubeconfig, a proxy, a flag we do not read the way oclif will) means no warm-up, and every error is the
 * command's to find and report.
 */

import { startWarmUp } from '../kube/warm-connections.js'

/** The commands whose first step is a request to the API server. */
const API_COMMANDS = new Set([
  'password',
  'shell',
  'ssh',
  'forward',
  'proxy',
  'cp',
  'sync',
  'akamas',
  'doctor',
  'ssh-config',
])
/** Flags after which the command never reaches the API server. */
const NO_API_FLAGS = new Set(['--help', '-h', '--version', '-v', '--docker', '--print-alias'])
/** Requests the commands send in parallel before anything else (the Secret and the pods). */
const PARALLEL_REQUESTS = 2

export function warmUp(argv: readonly string[]): Promise<void> {
  const flags = connectionFlags(argv)
  if (!flags) return Promise.resolve()
  return startWarmUp(
    (async () => {
      const [{ resolveConnection, defaultKubeEnvironment }, { KubeClient }] = await Promise.all([
        import('../kube/kubeconfig.js'),
        import('../kube/client.js'),
      ])
      const connection = await resolveConnection({ ...flags, namespace: undefined }, defaultKubeEnvironment())
      new KubeClient(connection).preconnect(PARALLEL_REQUESTS)
    })(),
  )
}

/** --kubeconfig and --context as oclif will read them, or undefined when this run needs no warm-up. */
export function connectionFlags(argv: readonly string[]): { kubeconfig?: string; context?: string } | undefined {
  const [command = '', ...rest] = argv
  if (!API_COMMANDS.has(command)) return undefined
  const end = rest.indexOf('--')
  const beforeSeparator = end < 0 ? rest : rest.slice(0, end)
  // `akamas` passes every argument to the Akamas CLI, except ours before a `--` that follows a flag; --print-alias
  // anywhere before `--` is ours (commands/akamas.ts).
  if (command === 'akamas' && beforeSeparator.includes('--print-alias')) return undefined
  const ours = command !== 'akamas' ? beforeSeparator : end > 0 && rest[0]!.startsWith('-') ? beforeSeparator : []
  if (ours.some((arg) => NO_API_FLAGS.has(arg.split('=', 1)[0]!))) return undefined
  const flags: { kubeconfig?: string; context?: string } = {}
  for (let i = 0; i < ours.length; i++) {
    const match = /^--(kubeconfig|context)(?:=(.*))?$/.exec(ours[i]!)
    if (!match) continue
    const value = match[2] ?? ours[++i]
    if (value === undefined || value === '') return undefined
    flags[match[1] as 'kubeconfig' | 'context'] = value
  }
  return flags
}
