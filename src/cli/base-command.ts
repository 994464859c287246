import type { Interfaces } from '@oclif/core'
import { Command } from '@oclif/core/command'
import * as Flags from '@oclif/core/flags'
import { createDeps, type Deps, type GlobalFlags } from '../deps.js'
import { type Io, processIo } from '../terminal/io.js'
import { renderError } from './render-error.js'

export type BaseFlags<T extends typeof Command> = Interfaces.InferredFlags<
  (typeof AkmCommand)['baseFlags'] & T['flags']
>

/**
 * What every command shares: the kubectl-style connection flags, --debug, and the single place where errors become
 * a message, a hint and an exit code. Commands stay thin: parse, call one function from a plain module, render.
 */
export abstract class AkmCommand extends Command {
  static override baseFlags = {
    kubeconfig: Flags.string({
      summary: 'Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).',
      helpGroup: 'CLUSTER',
    }),
    context: Flags.string({ summary: 'The kubeconfig context to use.', helpGroup: 'CLUSTER' }),
    namespace: Flags.string({
      char: 'n',
      summary: 'Namespace of the Akamas installation (default: $AKM_NAMESPACE, the context namespace, akamas).',
      helpGroup: 'CLUSTER',
    }),
    'request-timeout': Flags.string({
      summary: 'Give up on a request to the API server after this long (e.g. 10s, 1m; 0 waits forever).',
      default: '30s',
      helpGroup: 'CLUSTER',
    }),
    debug: Flags.boolean({ summary: 'Print diagnostics, and stack traces on errors, to stderr.', helpGroup: 'GLOBAL' }),
  }

  protected readonly io: Io = processIo()
  private globalFlags: GlobalFlags = {}
  private builtDeps: Deps | undefined

  /** The command line as given: oclif's parse() replaces this.argv with what it parsed. */
  private readonly givenArgv: string[] = [...this.argv]

  /** Our own argv, before `--`; what follows `--` is a remote command, passed on verbatim (see remoteCommand). */
  protected get ownArgv(): string[] {
    const index = this.givenArgv.indexOf('--')
    return index < 0 ? [...this.givenArgv] : this.givenArgv.slice(0, index)
  }

  /** Everything after the first `--`, untouched by our parser (it may hold `--`, `-n` or `--debug` of its own). */
  protected get remoteCommand(): string[] | undefined {
    const index = this.givenArgv.indexOf('--')
    return index < 0 ? undefined : this.givenArgv.slice(index + 1)
  }

  override async init(): Promise<void> {
    await super.init()
    const ctor = this.ctor as typeof AkmCommand
    const { flags } = await this.parse(
      {
        flags: ctor.flags,
        baseFlags: ctor.baseFlags,
        args: ctor.args,
        strict: ctor.strict,
        enableJsonFlag: ctor.enableJsonFlag,
      },
      this.ownArgv,
    )
    this.globalFlags = flags as GlobalFlags
  }

  /** The real adapters, built once per run. */
  protected deps(): Deps {
    this.builtDeps ??= createDeps(this.io, this.globalFlags)
    return this.builtDeps
  }

  override async finally(error: Error | undefined): Promise<void> {
    await this.builtDeps?.close()
    await super.finally(error)
  }

  protected override async catch(error: Error & { exitCode?: number }): Promise<void> {
    const debug = this.ownArgv.includes('--debug')
    const rendered = renderError(error, { debug, color: this.io.color })
    process.exitCode = rendered.exitCode
    if (rendered.text) this.io.stderr.write(rendered.text)
    if (rendered.json && this.jsonEnabled()) this.io.stdout.write(`${JSON.stringify(rendered.json, null, 2)}\n`)
  }
}
