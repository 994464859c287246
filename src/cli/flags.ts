import * as Flags from '@oclif/core/flags'

/** Which pod and container: shared by every command that reaches the management pod. */
export const targetFlags = {
  pod: Flags.string({
    summary: 'Use this pod instead of finding the management pod.',
    helpGroup: 'TARGET',
    // Both would mean two different ways to choose: say so rather than silently ignore one.
    exclusive: ['selector'],
  }),
  selector: Flags.string({
    char: 'l',
    summary: 'Label selector that finds the management pod (default: its Akamas labels, name or Deployment).',
    helpGroup: 'TARGET',
  }),
  container: Flags.string({
    char: 'c',
    summary: 'Container in the pod (default: the first, or kubectl.kubernetes.io/default-container).',
    helpGroup: 'TARGET',
  }),
}

/** Where the SSH credentials are: shared by password, ssh and the tunnel commands. */
export const credentialFlags = {
  secret: Flags.string({
    summary: 'Secret that holds the SSH password or key (default: the one the pod references, or well-known names).',
    helpGroup: 'CREDENTIALS',
  }),
  'password-field': Flags.string({ summary: 'Key of the password in the Secret.', helpGroup: 'CREDENTIALS' }),
  'key-field': Flags.string({ summary: 'Key of the private key in the Secret.', helpGroup: 'CREDENTIALS' }),
}

export const escapeCharFlag = Flags.string({
  char: 'e',
  summary: "Escape character for the session (as ssh -e); 'none' disables ~. and friends.",
  default: '~',
  // As ssh -e: one character, ^ and a letter for a control character, or none ("ab" would silently mean "a").
  parse: async (input) => {
    if (input === 'none' || [...input].length === 1) return input
    const control = /^\^([A-Za-z@[\\\]^_])$/.exec(input)
    if (control) return String.fromCharCode(control[1]!.toUpperCase().charCodeAt(0) & 0x1f)
    // oclif.exit 2: a usage error (exit 2), which the renderer shows as "Parsing --escape-char: bad escape…".
    throw Object.assign(new Error(`bad escape character "${input}": give one character, ^ and a letter, or none`), {
      oclif: { exit: 2 },
    })
  },
})

export const keepaliveFlag = Flags.string({
  summary: 'Send a keepalive this often, so that idle sessions outlive load balancers (e.g. 20s; 0 turns it off).',
  default: '20s',
})
