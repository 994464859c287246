import * as Flags from '@oclif/core/flags'
import type { DoctorReport } from '../actions/doctor.js'
import { AkmCommand } from '../cli/base-command.js'
import { dockerStreamFlags, identityFileFlag } from '../cli/docker-flags.js'
import { credentialFlags, targetFlags } from '../cli/flags.js'

export default class Doctor extends AkmCommand {
  static override summary = 'Check every link between you and the management pod, and say which one is broken.'
  static override description =
    `Checks, in order: the kubeconfig (and where the context and namespace come from), the API server (TLS, credentials, version, proxy, timeout), the namespace, your RBAC permissions (SelfSubjectAccessReview), the management pod (Running, Ready, restarts), the SSH credentials in its Secret, sshd through a port-forward (its banner), its host key against akm-access's known_hosts, an SSH login, and the management-pod Service that workflows and telemetry use; then the local side: terminal, known_hosts, the local port of the tunnel, Node.js.

With --docker (or when nothing configures Kubernetes and a docker-compose installation is found): the Docker engine (where DOCKER_HOST or the Docker context leads, its version), the management container (found, running), its SSH credentials (ALLOW_PASSWORD, CUSTOM_PASSWORD or /work/akamas_password), sshd's banner through the same stream the commands use, its host key and a login; then the same local side.

Each check passes (✓), warns (!), fails (✗, with a hint) or is skipped (–) because a check it depends on failed. The report goes to stdout; --json prints it as JSON for tools. The exit code is 0 when no check failed, otherwise that of the first failed check (the README's table: 7 forbidden, 10 pod not ready, 16 sshd unreachable…). Nothing is changed, and no secret is printed.`

  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> -n akamas-test',
    '<%= config.bin %> <%= command.id %> --json | jq -r \'.checks[] | select(.status == "fail") | .hint\'',
  ]

  static override enableJsonFlag = true

  static override flags = {
    ...targetFlags,
    ...credentialFlags,
    port: Flags.integer({
      char: 'p',
      summary: 'The local port akm-access ssh prefers for its tunnel, checked for being free (0: any).',
      default: 2222,
      min: 0,
      max: 65535,
    }),
    'remote-port': Flags.integer({ summary: 'Port of sshd in the pod.', default: 22, min: 1, max: 65535 }),
    user: Flags.string({ char: 'u', summary: 'User to log in as.', default: 'akamas' }),
    'known-hosts': Flags.string({ summary: 'known_hosts file (default: ~/.config/akm-access/known_hosts).' }),
    'identity-file': identityFileFlag,
    ...dockerStreamFlags,
  }

  async run(): Promise<DoctorReport | undefined> {
    const { flags } = await this.parse(Doctor, this.ownArgv)
    const [{ runDoctor }, { ReportPrinter, reportStyle }] = await Promise.all([
      import('../actions/doctor.js'),
      import('../doctor/report.js'),
    ])
    const json = this.jsonEnabled()
    // The report is this command's output (its data), so it goes to stdout, as it is found; which checks run (the
    // cluster's or the docker-compose container's) is known once the backend is.
    let printer: InstanceType<typeof ReportPrinter> | undefined
    const report = await runDoctor(
      {
        target: { pod: flags.pod, selector: flags.selector, container: flags.container },
        credentials: {
          ...(flags.secret ? { secret: flags.secret } : {}),
          ...(flags['password-field'] ? { password: flags['password-field'] } : {}),
          ...(flags['key-field'] ? { privateKey: flags['key-field'] } : {}),
        },
        localPort: flags.port,
        remotePort: flags['remote-port'],
        user: flags.user,
        knownHostsFile: flags['known-hosts'],
        docker: {
          explicit: Boolean(flags.docker || flags['docker-context'] || flags['container-name']),
          context: flags['docker-context'],
          containerName: flags['container-name'],
          streamMode: (flags['docker-stream'] ?? 'auto') as 'auto' | 'address' | 'exec',
          requestTimeout: flags['request-timeout'],
          identityFile: flags['identity-file'],
        },
      },
      this.deps(),
      json
        ? undefined
        : {
            start: (checks) => {
              printer = new ReportPrinter(this.io.stdout, reportStyle(this.io.stdout, this.io.env), checks)
            },
            result: (result) => printer?.add(result),
          },
    )
    printer?.finish(report)
    process.exitCode = report.exitCode
    return json ? report : undefined
  }
}
