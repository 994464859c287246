/**
 * Trust on first use, as OpenSSH does it, for the management pod's sshd: a known key passes silently; a new one is
 * shown with its SHA256 fingerprint and confirmed (or accepted by --accept-new-host-key in scripts); a changed one is
 * refused with OpenSSH's warning. Never blindly accepted.
 */
import type { Io } from '../terminal/io.js'
import type { Prompter } from '../terminal/prompter.js'
import { addHostKey, changedHostKeyWarning, checkHostKey, fingerprint, keyType, keyTypeLabel } from './known-hosts.js'

export interface HostKeyPolicy {
  knownHostsFile: string
  alias: string
  /** Shown next to the alias in the first-use question (the pod's current name). */
  hostLabel: string
  acceptNew: boolean
  io: Io
  prompter: Prompter
}

export type HostKeyVerdict = 'known' | 'added' | 'rejected-new' | 'changed'

export function hostKeyVerifier(policy: HostKeyPolicy): {
  verify: (blob: Buffer) => Promise<boolean>
  verdict: () => HostKeyVerdict | undefined
} {
  let verdict: HostKeyVerdict | undefined
  const verify = async (blob: Buffer): Promise<boolean> => {
    const check = checkHostKey(policy.knownHostsFile, policy.alias, blob)
    if (check.status === 'known') {
      verdict = 'known'
      return true
    }
    if (check.status === 'changed') {
      verdict = 'changed'
      policy.io.stderr.write(
        changedHostKeyWarning({
          alias: policy.alias,
          blob,
          file: policy.knownHostsFile,
          line: check.line,
          knownType: check.knownType,
        }),
      )
      return false
    }
    const type = keyTypeLabel(keyType(blob))
    if (!policy.acceptNew) {
      if (!policy.prompter.canPrompt) {
        verdict = 'rejected-new'
        return false
      }
      policy.io.stderr.write(
        `The authenticity of host '${policy.alias}' (${policy.hostLabel}) can't be established.\n` +
          `${type} key fingerprint is ${fingerprint(blob)}.\n`,
      )
      const yes = await policy.prompter.confirm('Are you sure you want to continue connecting?', false)
      if (!yes) {
        verdict = 'rejected-new'
        return false
      }
    }
    addHostKey(policy.knownHostsFile, policy.alias, blob)
    policy.io.stderr.write(`Warning: Permanently added '${policy.alias}' (${type}) to the list of known hosts.\n`)
    verdict = 'added'
    return true
  }
  return { verify, verdict: () => verdict }
}
