/**
 * Bad flags and arguments (exit 2, or the code of what they point at), and paths cp cannot use: missing, not
 * readable, not a file, too long, ambiguous. `{dir}` in an argument is replaced by a scratch folder of the case,
 * `{fifo}` by a FIFO in it, `{file}` by a file in it, and `{workFifo}` by a FIFO in the pod's /work.
 */
export interface ArgsCase {
  name: string
  args: string[]
  code: number
  message: RegExp
}

const runs = (command: string) => (command === 'ssh' ? ['--no-tunnel', '--', 'true'] : ['--', 'true'])

export const flagCases: ArgsCase[] = [
  { name: 'an unknown flag', args: ['shell', '--nope'], code: 2, message: /Nonexistent flag: --nope/ },
  { name: 'a flag without its value', args: ['shell', '--context'], code: 2, message: /--context/ },
  {
    name: 'a --request-timeout that is not a duration',
    args: ['shell', '--request-timeout', 'abc', ...runs('shell')],
    code: 2,
    message: /invalid --request-timeout value "abc"/,
  },
  {
    name: 'a negative --request-timeout',
    args: ['shell', '--request-timeout', '-1', ...runs('shell')],
    code: 2,
    message: /invalid --request-timeout value "-1"/,
  },
  {
    name: 'a --request-timeout with an unknown unit',
    args: ['shell', '--request-timeout', '10parsecs', ...runs('shell')],
    code: 2,
    message: /invalid --request-timeout/,
  },
  {
    name: 'a --keepalive that is not a duration',
    args: ['shell', '--keepalive', 'xyz', ...runs('shell')],
    code: 2,
    message: /invalid --keepalive value "xyz"/,
  },
  {
    name: 'a negative ssh --keepalive',
    args: ['ssh', '--keepalive', '-5s', ...runs('ssh')],
    code: 2,
    message: /invalid --keepalive/,
  },
  {
    name: 'a --port above 65535',
    args: ['ssh', '--port', '70000'],
    code: 2,
    message: /Parsing --port: Expected an integer less than or equal to 65535/,
  },
  {
    name: 'a --port that is not a number',
    args: ['ssh', '--port', 'abc'],
    code: 2,
    message: /Parsing --port: Expected an integer/,
  },
  { name: 'a negative forward --port', args: ['forward', '--port', '-1'], code: 2, message: /--port/ },
  {
    name: 'a --remote-port of 0',
    args: ['ssh', '--remote-port', '0'],
    code: 2,
    message: /Parsing --remote-port: Expected an integer greater than or equal to 1/,
  },
  {
    name: 'a proxy --remote-port above 65535',
    args: ['proxy', '--remote-port', '99999'],
    code: 2,
    message: /--remote-port/,
  },
  {
    name: 'a --pod-timeout that is not a duration',
    args: ['forward', '--pod-timeout', 'abc'],
    code: 2,
    message: /invalid --pod-timeout value "abc"/,
  },
  {
    name: 'a negative --pod-timeout',
    args: ['proxy', '--pod-timeout', '-3s'],
    code: 2,
    message: /invalid --pod-timeout/,
  },
  {
    name: 'a --selector the API server cannot parse',
    args: ['shell', '--selector', '!!!bad', ...runs('shell')],
    code: 2,
    message: /invalid --selector "!!!bad"/,
  },
  {
    name: 'a --container the pod does not have',
    args: ['shell', '--container', 'nope', ...runs('shell')],
    code: 2,
    message: /has no container named nope/,
  },
  {
    name: 'an --escape-char of two characters',
    args: ['ssh', '--escape-char', 'ab'],
    code: 2,
    message: /bad escape character "ab"/,
  },
  {
    name: '--tty and --no-tty together',
    args: ['shell', '--tty', '--no-tty', ...runs('shell')],
    code: 2,
    message: /cannot also be provided/,
  },
  {
    name: 'password --key and --key-file together',
    args: ['password', '--key', '--key-file', '{dir}/k'],
    code: 2,
    message: /cannot also be provided/,
  },
  { name: 'password --force without --key-file', args: ['password', '--force'], code: 2, message: /--key-file/ },
  { name: 'an unknown command', args: ['nope'], code: 2, message: /command nope not found/ },
  {
    name: 'a --pod that is not a pod name',
    args: ['shell', '--pod', '../etc', ...runs('shell')],
    code: 9,
    message: /pod \.\.\/etc not found/,
  },
  {
    name: 'a namespace that cannot exist',
    args: ['shell', '-n', 'Bad_NS!', ...runs('shell')],
    code: 8,
    message: /namespace Bad_NS! not found/,
  },
  {
    name: 'a --secret that does not exist',
    args: ['ssh', '--secret', 'nope', ...runs('ssh')],
    code: 11,
    message: /Secret nope not found/,
  },
  {
    name: 'a --password-field that is not in the Secret',
    args: ['password', '--password-field', 'nope'],
    code: 12,
    message: /has no key "nope"/,
  },
  {
    name: 'a --passphrase-file that does not exist',
    args: ['ssh', '--passphrase-file', '{dir}/nope', ...runs('ssh')],
    code: 17,
    message: /cannot read the passphrase file \S+: no such file or directory/,
  },
  {
    name: 'a --known-hosts that is a folder',
    args: ['ssh', '--known-hosts', '{dir}', ...runs('ssh')],
    code: 17,
    message: /cannot read the known_hosts file \S+: it is a folder/,
  },
  { name: 'a --key-file that exists', args: ['password', '--key-file', '{file}'], code: 17, message: /already exists/ },
  {
    name: 'a --key-file in a folder that does not exist',
    args: ['password', '--key-file', '{dir}/no/such/k'],
    code: 17,
    message: /the folder does not exist/,
  },
  {
    name: 'a --user sshd does not accept',
    args: ['ssh', '--user', 'root', ...runs('ssh')],
    code: 15,
    message: /rejected the credentials/,
  },
]

export const pathCases: ArgsCase[] = [
  {
    name: 'a local source that does not exist',
    args: ['cp', '{dir}/nope.txt', ':'],
    code: 17,
    message: /nope\.txt: no such file or directory/,
  },
  {
    name: 'a pod source that does not exist',
    args: ['cp', ':/work/nope.txt', '{dir}/'],
    code: 18,
    message: /:\/work\/nope\.txt: no such file or directory/,
  },
  {
    name: 'a pod destination the pod user may not write',
    args: ['cp', '{file}', ':/root/x'],
    code: 18,
    message: /permission denied/,
  },
  {
    name: 'a pod source the pod user may not read',
    args: ['cp', ':/etc/shadow', '{dir}/'],
    code: 18,
    message: /:\/etc\/shadow in pod \S+: permission denied/,
  },
  {
    name: 'a local source that is a device',
    args: ['cp', '/dev/null', ':'],
    code: 17,
    message: /\/dev\/null is not a regular file, folder or link/,
  },
  {
    name: 'a local destination that is a FIFO (never replaced by a file)',
    args: ['cp', ':/work/corpus.txt', '{fifo}'],
    code: 17,
    message: /is not a regular file, folder or link/,
  },
  {
    name: 'a pod source that is a FIFO',
    args: ['cp', '{workFifo}', '{dir}/'],
    code: 18,
    message: /is not a regular file, folder or link/,
  },
  {
    name: 'two sources with the same name into one folder',
    args: ['cp', '{file}', '{file}', ':/work/'],
    code: 2,
    message: /would both be copied to/,
  },
  {
    name: 'several sources into a file',
    args: ['cp', '{file}', '{dir}/other.txt', ':/work/corpus.txt'],
    code: 2,
    message: /is not a folder/,
  },
  { name: 'the pod’s / as a source', args: ['cp', ':/', '{dir}/'], code: 2, message: /cannot copy :\/ as a whole/ },
  {
    name: 'a pod file name longer than the file system allows',
    args: ['cp', '{file}', `:/work/${'n'.repeat(300)}`],
    code: 18,
    message: /n{300} in pod \S+: the name is too long, or not valid there/,
  },
  {
    name: 'a pod destination in a folder that does not exist',
    args: ['cp', '{file}', ':/work/no/such/folder/x.txt'],
    code: 18,
    message: /no such file or directory/,
  },
  {
    name: 'a local destination in a folder that does not exist',
    args: ['cp', ':/work/corpus.txt', '{dir}/no/such/folder/x.txt'],
    code: 17,
    message: /no such file or directory|does not exist/,
  },
]
