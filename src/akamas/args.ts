/**
 * Which arguments of an Akamas CLI command name local files, and what they become in the pod.
 *
 * The rule, meant to be predictable rather than clever:
 *   1. `:PATH` is a pod path: the colon is dropped (`:study.yaml` → `/work/study.yaml`), nothing is uploaded.
 *   2. Otherwise an argument is a local-path candidate if it is the value of `-f`/`--file` (`-f X`, `--file X`,
 *      `--file=X`), or looks like a path: it contains `/`, starts with `.`, or ends in .yaml, .yml or .json.
 *      The value of any `--option=VALUE` is judged the same way.
 *   3. A candidate is uploaded only if it exists on this machine (a file or a folder); it is then replaced by its
 *      path in the upload folder, keeping its name. Anything else passes through exactly as typed.
 * So `akamas list study` never uploads a local file called `study`, and `akamas create study /work/s.yaml` (a pod
 * path, not a local one) passes through; a name that exists both here and in the pod is taken from here (write
 * `:/work/…` to mean the pod's).
 */
import { posix } from 'node:path'
import { isRemoteSpec, resolveRemotePath } from '../transfer/remote-path.js'

export type LocalKind = 'file' | 'dir'

export interface Upload {
  /** As typed. */
  local: string
  kind: LocalKind
  /** Where it goes in the pod. */
  remote: string
}

export interface ArgPlan {
  /** The arguments for the Akamas CLI in the pod. */
  args: string[]
  /** Each local path once, however often it is named. */
  uploads: Upload[]
}

const fileFlags = new Set(['-f', '--file'])
const pathLike = /\/|^\.|\.(ya?ml|json)$/i

/**
 * `exists` says what a local path is (undefined: nothing); `identity` tells two spellings of one file apart from
 * two files with the same name (e.g. the resolved absolute path).
 */
export function planArgs(
  args: readonly string[],
  uploadDir: string,
  exists: (path: string) => LocalKind | undefined,
  identity: (path: string) => string = (path) => path,
): ArgPlan {
  const uploads = new Map<string, Upload>()
  const usedNames = new Set<string>()
  const upload = (local: string, kind: LocalKind): string => {
    const key = identity(local)
    const known = uploads.get(key)
    if (known) return known.remote
    const name = posix.basename(local.replace(/\\/g, '/').replace(/\/+$/, '')) || 'upload'
    // Same name twice (a/study.yaml, b/study.yaml): the second goes into a numbered folder of its own.
    let remote = posix.join(uploadDir, name)
    for (let n = 2; usedNames.has(remote); n++) remote = posix.join(uploadDir, String(n), name)
    usedNames.add(remote)
    uploads.set(key, { local, kind, remote })
    return remote
  }
  const rewrite = (value: string, forced: boolean): string => {
    if (isRemoteSpec(value)) return resolveRemotePath(value.slice(1))
    if (!forced && !pathLike.test(value)) return value
    const kind = value === '' ? undefined : exists(value)
    return kind ? upload(value, kind) : value
  }

  const out: string[] = []
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!
    const previous = i > 0 ? args[i - 1]! : undefined
    if (previous !== undefined && fileFlags.has(previous)) {
      out.push(rewrite(arg, true))
      continue
    }
    const option = /^(--?[^=\s]+)=(.*)$/s.exec(arg)
    if (option) {
      out.push(`${option[1]}=${rewrite(option[2]!, fileFlags.has(option[1]!))}`)
      continue
    }
    out.push(rewrite(arg, false))
  }
  return { args: out, uploads: [...uploads.values()] }
}
