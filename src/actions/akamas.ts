/**
 * `akm-access akamas ARGS…`: the Akamas CLI, run in the management pod as if it were installed here. Arguments
 * reach it exactly as typed (exec argv, no remote shell); local files the arguments name are uploaded first to a
 * folder of this invocation under /work/.akm-access/uploads and the arguments rewritten to point there
 * (src/akamas/args.ts has the rule); the folder is removed afterwards. Streams, the terminal (the Akamas CLI may ask
 * to log in) and the exit status are those of `shell -- akamas ARGS…`.
 */
import { randomBytes } from 'node:crypto'
import { statSync } from 'node:fs'
import { resolve } from 'node:path'
import { type ArgPlan, type LocalKind, planArgs } from '../akamas/args.js'
import type { Deps } from '../deps.js'
import { capturePodCommand, openPodExec } from '../session/pod-exec.js'
import { bridgeSession } from '../session/terminal-bridge.js'
import { findManagementPod, type TargetOptions } from '../target/find-target.js'
import { say } from '../terminal/io.js'
import { uploadOverExec } from '../transfer/exec-upload.js'
import { formatBytes } from '../transfer/progress.js'
import { exitCodeOf, remoteArgv } from './shell.js'

export interface AkamasOptions {
  target: TargetOptions
  /** The Akamas CLI's arguments, as typed. */
  args: string[]
  tty: 'auto' | 'force' | 'never'
  escapeChar: string
  /** Leave the upload folder in the pod (its path is printed). */
  keepUploads: boolean
  /** The Akamas CLI's name in the pod. */
  program: string
}

/** Where uploads go: one folder per invocation, named by time (for people looking) and chance (for uniqueness). */
export const UPLOADS_ROOT = '/work/.akm-access/uploads'

export async function runAkamas(
  options: AkamasOptions,
  deps: Pick<Deps, 'io' | 'kube' | 'prompter' | 'logger'>,
): Promise<number> {
  const { io, logger } = deps
  const uploadDir = `${UPLOADS_ROOT}/${new Date().toISOString().replace(/[-:]/g, '').replace(/\..*$/, '')}-${randomBytes(3).toString('hex')}`
  const plan: ArgPlan = planArgs(options.args, uploadDir, localKind, (path) => resolve(path))
  for (const upload of plan.uploads) logger.debug(`uploading ${upload.local} as ${upload.remote}`)

  const terminal = Boolean(io.stdin.isTTY && io.stdout.isTTY)
  const tty = options.tty === 'never' ? false : options.tty === 'force' ? Boolean(io.stdin.isTTY) : terminal
  const client = await deps.kube()
  const target = await findManagementPod(client, options.target, deps.prompter)

  if (plan.uploads.length > 0) {
    const sent = await uploadOverExec(client, target, uploadDir, plan.uploads)
    logger.debug(`uploaded ${sent.files} files (${formatBytes(sent.bytes)}) to ${uploadDir}, verified by SHA-256`)
  }
  try {
    const term = io.env.TERM && io.env.TERM !== 'dumb' ? io.env.TERM : 'xterm-256color'
    const size = io.stdout.columns && io.stdout.rows ? { cols: io.stdout.columns, rows: io.stdout.rows } : undefined
    const session = await openPodExec(client, target, {
      argv: remoteArgv([options.program, ...plan.args], tty, term),
      tty,
      ...(tty && size ? { initialSize: size } : {}),
      onV4StdinEnd: () =>
        say(
          io,
          'warning: this API server speaks exec protocol v4, which cannot pass the end of input to the Akamas CLI',
        ),
    })
    const end = await bridgeSession(io, session, { tty, escapeChar: options.escapeChar, hostLabel: target.pod.name })
    return exitCodeOf(end, target.pod.name)
  } finally {
    if (plan.uploads.length > 0) await removeUploads(deps, client, target, uploadDir, options.keepUploads)
  }
}

async function removeUploads(
  deps: Pick<Deps, 'io' | 'logger'>,
  client: Parameters<typeof capturePodCommand>[0],
  target: Parameters<typeof capturePodCommand>[1],
  uploadDir: string,
  keep: boolean,
): Promise<void> {
  if (keep) {
    say(deps.io, `the uploaded files are kept in ${uploadDir}`)
    return
  }
  // The parents go too when nothing else is in them; rmdir refuses otherwise, which is what we want.
  const removed = await capturePodCommand(client, target, [
    'sh',
    '-c',
    'rm -rf -- "$1" && { rmdir -- "$2" "$3" 2>/dev/null; true; }',
    'akm-clean',
    uploadDir,
    '/work/.akm-access/uploads',
    '/work/.akm-access',
  ]).catch((error: Error) => ({ exitCode: undefined, stderr: error.message, stdout: '' }))
  if (removed.exitCode !== 0) {
    say(
      deps.io,
      `warning: could not remove ${uploadDir} from the pod: ${removed.stderr.trim() || 'the connection failed'}`,
    )
  }
}

function localKind(path: string): LocalKind | undefined {
  try {
    const info = statSync(path)
    return info.isFile() ? 'file' : info.isDirectory() ? 'dir' : undefined
  } catch {
    return undefined
  }
}
