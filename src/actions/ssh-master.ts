/**
 * `akm-access ssh-master` (hidden): run by OpenSSH itself, from the `Match exec` of a password installation's Host
 * entry, before it connects. If no master connection is up for the host, it starts one: a real `ssh -M -N -f`
 * spawned with SSH_ASKPASS pointing to akm-access's askpass hook and SSH_ASKPASS_REQUIRE=force in its own
 * environment, the password handed over a private socket to that hook only. Exit 0 means "the master is up", which
 * makes the entry's ControlPath apply, so the ssh that asked (and every later one) rides it; anything else leaves
 * ssh to connect on its own, after our message on stderr.
 */
import { rmSync } from 'node:fs'
import { dirname, join } from 'node:path'
import type { Deps } from '../deps.js'
import { AccessError, ExitCode } from '../errors.js'
import { serveAskpass } from '../ssh/askpass.js'
import { hostOptions, shellQuote } from '../ssh/ssh-config-file.js'
import { isMasterAlive, lockMaster, startMaster } from '../ssh/ssh-master.js'
import { locateManagementPod, type SshAccessOptions } from './ssh-access.js'
import { type ClusterFlags, configDir, controlPathFor, hostEntry, masterPersist, writeScript } from './ssh-config.js'

export interface SshMasterOptions extends SshAccessOptions {
  host: string
  self: string[]
  cluster: ClusterFlags
}

export async function runSshMaster(
  options: SshMasterOptions,
  deps: Pick<Deps, 'io' | 'kube' | 'prompter' | 'logger'>,
): Promise<number> {
  const { io } = deps
  const controlPath = controlPathFor(io.env, options.host)
  // The common case, on every ssh: the master is up. One connect, no API request.
  if (await isMasterAlive(controlPath)) return 0
  const release = await lockMaster(`${controlPath}.lock`, () => isMasterAlive(controlPath))
  if (!release) return 0
  try {
    if (await isMasterAlive(controlPath)) return 0
    // A dead master's socket file would make the new master refuse to listen.
    rmSync(controlPath, { force: true })
    const { location, credentials } = await locateManagementPod(options, deps)
    const found = await credentials()
    const password = found.passwordLogin === false ? undefined : found.password
    if (password === undefined) {
      throw new AccessError(`${found.source} holds no password that sshd accepts`, {
        exitCode: ExitCode.passwordDisabled,
        hint: `the installation may use a key now: run akm-access ssh-config --write --host ${options.host} again`,
      })
    }
    const entry = hostEntry(location, options, io.env, undefined)
    const askpass = await serveAskpass(dirname(controlPath), password)
    try {
      const result = await startMaster({
        options: hostOptions(entry),
        host: options.host,
        controlPath,
        persist: masterPersist,
        env: {
          ...io.env,
          SSH_ASKPASS: writeAskpassScript(io.env, options.self),
          SSH_ASKPASS_REQUIRE: 'force',
          ...askpass.env,
        },
        logFile: `${controlPath}.log`,
      })
      if (!result.ok) throw masterFailed(result.log, options.host)
      deps.logger.debug(`ssh master for ${options.host} is up (${controlPath})`)
      return 0
    } finally {
      askpass.close()
    }
  } finally {
    release()
  }
}

/** SSH_ASKPASS names one executable (ssh passes it the prompt, nothing else): a two-line script that holds no secret. */
function writeAskpassScript(env: NodeJS.ProcessEnv, self: string[]): string {
  const file = join(configDir(env), 'askpass')
  writeScript(
    file,
    [
      '#!/bin/sh',
      '# akm-access askpass hook (SSH_ASKPASS of the master ssh that akm-access ssh-master starts). It holds no secret:',
      '# akm-access asks the process that started ssh, over a private socket named in the environment.',
      `exec ${self.map(shellQuote).join(' ')} askpass -- "$@"`,
      '',
    ].join('\n'),
  )
  return file
}

function masterFailed(log: string, host: string): AccessError {
  const last =
    log
      .split('\n')
      .filter((line) => line.trim() !== '')
      .at(-1) ?? 'ssh exited without a message'
  if (/Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED/.test(log)) {
    return new AccessError(`the host key of the management pod does not match the one stored for ${host}`, {
      exitCode: ExitCode.hostKey,
      hint: 'if you know why it changed: akm-access ssh --forget-host-key, then akm-access ssh-config --write',
    })
  }
  if (/Permission denied|Too many authentication failures/.test(log)) {
    return new AccessError('sshd in the management pod rejected the password from the Secret', {
      exitCode: ExitCode.sshAuth,
      hint: 'the Secret may be out of date with the pod (restart the pod after changing it)',
    })
  }
  return new AccessError(`could not open the master connection for ${host}: ${last}`, {
    exitCode: ExitCode.sshUnreachable,
    hint: 'run akm-access ssh to see what fails (akm-access doctor checks sshd)',
  })
}
