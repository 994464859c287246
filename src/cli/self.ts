import { realpathSync } from 'node:fs'

/**
 * How another program (OpenSSH's ProxyCommand, `Match exec`, SSH_ASKPASS) runs this very akm-access: the Node
 * binary and the script, as absolute paths, so that it works from shells and editors whose PATH lacks them.
 */
export function selfCommand(): string[] {
  const script = process.argv[1]
  return [process.execPath, script ? realpathSync(script) : 'akm-access']
}
