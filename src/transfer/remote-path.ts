/**
 * How paths are written on our command lines: a leading `:` names a path in the management pod (`:/work/x`, or
 * `:x`, relative to /work; `:` alone is /work), anything else a local path. Only the first character counts, so a
 * local name with a colon in it needs no quoting unless it starts with one (write `./:x`).
 */
import { posix } from 'node:path'

/** The folder relative pod paths start from: the management pod's persistent volume and login folder. */
export const REMOTE_HOME = '/work'

export type PathSpec =
  | { side: 'local'; path: string; trailingSlash: boolean }
  | { side: 'remote'; path: string; trailingSlash: boolean }

export function isRemoteSpec(arg: string): boolean {
  return arg.startsWith(':')
}

/** Parses one argument into a side and a path; remote paths come out absolute and normalised. */
export function parsePathSpec(arg: string): PathSpec {
  if (isRemoteSpec(arg)) {
    const given = arg.slice(1)
    return { side: 'remote', path: resolveRemotePath(given), trailingSlash: given.endsWith('/') }
  }
  return { side: 'local', path: arg, trailingSlash: arg.endsWith('/') || arg.endsWith('\\') }
}

/** An absolute, normalised pod path: relative ones are taken from /work. */
export function resolveRemotePath(path: string): string {
  const absolute = posix.isAbsolute(path) ? path : posix.join(REMOTE_HOME, path)
  const normal = posix.normalize(absolute)
  return normal.length > 1 && normal.endsWith('/') ? normal.slice(0, -1) : normal
}

/** How a remote path is shown to the user: with the colon, as it would be typed. */
export function showRemote(path: string): string {
  return `:${path}`
}
