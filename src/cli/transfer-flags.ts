import * as Flags from '@oclif/core/flags'
import type { SshAccessOptions } from '../actions/ssh-access.js'
import { dockerStreamFlags, identityFileFlag } from './docker-flags.js'
import { credentialFlags, targetFlags } from './flags.js'

/** What cp, sync and akamas need to reach the pod's sshd: the target, the credentials and the host key policy. */
export const sshAccessFlags = {
  ...targetFlags,
  ...credentialFlags,
  'remote-port': Flags.integer({ summary: 'Port of sshd in the pod.', default: 22, min: 1, max: 65535 }),
  user: Flags.string({ char: 'u', summary: 'User to log in as.', default: 'akamas' }),
  'accept-new-host-key': Flags.boolean({
    summary: 'Trust the host key on first use without asking (a changed key is still refused).',
  }),
  'known-hosts': Flags.string({ summary: 'known_hosts file (default: ~/.config/akm-access/known_hosts).' }),
  'passphrase-file': Flags.string({ summary: 'File holding the passphrase of an encrypted private key.' }),
  'identity-file': identityFileFlag,
  ...dockerStreamFlags,
}

interface SshAccessFlagValues {
  pod?: string | undefined
  selector?: string | undefined
  container?: string | undefined
  secret?: string | undefined
  'password-field'?: string | undefined
  'key-field'?: string | undefined
  'remote-port': number
  user: string
  'accept-new-host-key': boolean
  'known-hosts'?: string | undefined
  'passphrase-file'?: string | undefined
  'identity-file'?: string | undefined
}

export function toSshAccessOptions(flags: SshAccessFlagValues): SshAccessOptions {
  return {
    target: { pod: flags.pod, selector: flags.selector, container: flags.container },
    credentials: { secret: flags.secret, password: flags['password-field'], privateKey: flags['key-field'] },
    remotePort: flags['remote-port'],
    user: flags.user,
    acceptNewHostKey: flags['accept-new-host-key'],
    knownHostsFile: flags['known-hosts'],
    passphraseFile: flags['passphrase-file'],
    identityFile: flags['identity-file'],
  }
}
