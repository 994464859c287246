import { describe, expect, it } from 'vitest'
import { parse, stringify } from 'yaml'
import { parseYamlLite } from '../../../src/kube/yaml-lite.js'

/** Written by `kubectl config set-cluster/set-credentials/set-context` (v1.32), certificate shortened. */
const KUBECTL = `apiVersion: v1
clusters:
- cluster:
    insecure-skip-tls-verify: true
    server: https://dev.example.com
    tls-server-name: api.internal
  name: dev
- cluster:
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJmVENDQVNPZ0F3SUJBZ0lVZG==
    server: https://10.0.0.1:6443
  name: prod
contexts:
- context:
    cluster: dev
    user: alice
  name: dev
- context:
    cluster: prod
    namespace: akamas
    user: eks
  name: prod
current-context: prod
kind: Config
preferences: {}
users:
- name: alice
  user:
    token: abc.def-ghi
- name: bob
  user:
    password: 'p@ss: "word"'
    username: bob
- name: eks
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      args:
      - eks
      - get-token
      - --cluster-name
      - prod
      command: aws
      env:
      - name: AWS_PROFILE
        value: prod
      interactiveMode: IfAvailable
      provideClusterInfo: true
`

/** The shape `aws eks update-kubeconfig` writes (PyYAML). */
const AWS = `apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t
    server: https://ABCDEF0123456789.gr7.us-west-2.eks.amazonaws.com
  name: arn:aws:eks:us-west-2:123456789012:cluster/prod
contexts:
- context:
    cluster: arn:aws:eks:us-west-2:123456789012:cluster/prod
    user: arn:aws:eks:us-west-2:123456789012:cluster/prod
  name: arn:aws:eks:us-west-2:123456789012:cluster/prod
current-context: arn:aws:eks:us-west-2:123456789012:cluster/prod
kind: Config
preferences: {}
users:
- name: arn:aws:eks:us-west-2:123456789012:cluster/prod
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      args:
      - --region
      - us-west-2
      - eks
      - get-token
      - --cluster-name
      - prod
      - --output
      - json
      command: aws
      env:
      - name: AWS_PROFILE
        value: prod
`

/** The shape `gcloud container clusters get-credentials` writes, with its folded installHint. */
const GKE = `apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t
    server: https://34.1.2.3
  name: gke_my-project_europe-west1_prod
contexts:
- context:
    cluster: gke_my-project_europe-west1_prod
    user: gke_my-project_europe-west1_prod
  name: gke_my-project_europe-west1_prod
current-context: gke_my-project_europe-west1_prod
kind: Config
preferences: {}
users:
- name: gke_my-project_europe-west1_prod
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: gke-gcloud-auth-plugin
      installHint: Install gke-gcloud-auth-plugin for use with kubectl by following
        https://cloud.google.com/kubernetes-engine/docs/how-to/cluster-access-for-kubectl#install_plugin
      provideClusterInfo: true
`

/** Hand-written: comments, quoting, CRLF, a document marker, indented sequences, a sequence at the key's column. */
const HANDWRITTEN = [
  '---',
  '# my clusters',
  'apiVersion: v1  # trailing comment',
  'kind: "Config"',
  'clusters:',
  '  - name: "quoted name"',
  '    cluster:',
  "      server: 'https://kube.example.com:6443'",
  '',
  '      extensions:',
  '        - name: client.authentication.k8s.io/exec',
  '          extension:',
  '            audience: kube',
  'contexts:',
  '- name: c',
  '  context: {}',
  'users:',
  '-',
  '  name: u',
  '  user:',
  '    token: "a\\"b\\\\c\\u0041"',
  '    as-groups: []',
  "    as: 'it''s me'",
  '    env: ~',
  '    username: foo#bar',
  '    password: -dash-start',
  'current-context: c',
].join('\r\n')

describe('yaml-lite', () => {
  it.each([
    ['kubectl', KUBECTL],
    ['aws', AWS],
    ['gcloud', GKE],
    ['hand-written', HANDWRITTEN],
  ])('reads %s kubeconfigs exactly as the yaml package does', (_name, text) => {
    const lite = parseYamlLite(text)
    expect(lite).not.toBeUndefined()
    expect(lite).toEqual(parse(text))
  })

  it('folds the gcloud installHint into one line', () => {
    const doc = parseYamlLite(GKE) as { users: { user: { exec: { installHint: string } } }[] }
    expect(doc.users[0]?.user.exec.installHint).toBe(
      'Install gke-gcloud-auth-plugin for use with kubectl by following https://cloud.google.com/kubernetes-engine/docs/how-to/cluster-access-for-kubectl#install_plugin',
    )
  })

  it.each([
    ['flow mapping', 'a: {b: c}'],
    ['flow sequence', 'args: [eks, get-token]'],
    ['block scalar', 'installHint: |\n  line one\n  line two\n'],
    ['folded block scalar', 'x: >-\n  a\n  b\n'],
    ['anchor', 'a: &x foo\nb: *x\n'],
    ['tag', 'a: !!str 123'],
    ['number', 'a: 123'],
    ['leading-zero number', 'token: 0123'],
    ['float', 'a: 1.5'],
    ['negative number', 'a: -1'],
    ['infinity', 'a: .inf'],
    ['duplicate key', 'a: 1x\na: 2x'],
    ['multi-document', 'a: b\n---\nc: d\n'],
    ['tab indentation', 'a:\n\tb: c'],
    ['unterminated quote', 'a: "abc'],
    ['multi-line quoted', 'a: "abc\n  def"'],
    ['unknown escape', 'a: "\\x41"'],
    ['bad indentation', 'a:\n    b: c\n  d: e'],
    ['plain continuation after a comment', 'a: b\n# c\n  d'],
    ['merge key', 'a:\n  <<: {}'],
    ['top-level scalar', 'just text'],
    ['BOM', '\uFEFFa: b'],
    ['directive', '%YAML 1.2\n---\na: b'],
  ])('leaves %s to the yaml package', (_name, text) => {
    expect(parseYamlLite(text)).toBeUndefined()
  })

  it('agrees with the yaml package on generated documents whenever it accepts them', () => {
    const strings = [
      'plain',
      'with space',
      'with: colon',
      'hash # inside',
      'x#y',
      "it's",
      'say "hi"',
      'true',
      'False',
      'null',
      '~',
      '',
      '123',
      '0x1F',
      '1e3',
      '-',
      '- item',
      '--flag',
      'https://h:6443/p?q=1',
      'arn:aws:eks:us-west-2:1:cluster/x',
      ' leading',
      'trailing ',
      'multi\nline',
      'tab\there',
      'émoji ✓',
      '{braces}',
      '[brackets]',
      '*star',
      '&amp',
      '!bang',
      '|pipe',
      '>gt',
      '%pct',
      '@at',
      '`tick',
      '?q',
      ':c',
      ',comma',
      'a,b',
      'back\\slash',
    ]
    // mulberry32: a small deterministic generator with well-mixed low bits.
    let seed = 7
    const random = (n: number) => {
      seed = (seed + 0x6d2b79f5) | 0
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
      return (((t ^ (t >>> 14)) >>> 0) % 4294967296) % n
    }
    const value = (depth: number): unknown => {
      const pick = random(depth > 2 ? 4 : 7)
      if (pick === 0) return strings[random(strings.length)]
      if (pick === 1) return random(2) === 0
      if (pick === 2) return null
      if (pick === 3) return strings[random(strings.length)]
      if (pick === 4) return Array.from({ length: random(4) }, () => value(depth + 1))
      const object: Record<string, unknown> = {}
      for (let i = random(5); i > 0; i--) object[strings[random(strings.length)] || 'k'] = value(depth + 1)
      return object
    }
    let accepted = 0
    let left = 0
    for (let i = 0; i < 400; i++) {
      const doc = { root: value(0), list: [value(1), value(1)] }
      for (const options of [
        {},
        { indentSeq: false },
        { defaultStringType: 'QUOTE_DOUBLE' as const },
        { lineWidth: 20 },
      ]) {
        const text = stringify(doc, options)
        const lite = parseYamlLite(text)
        if (lite === undefined) {
          left++
          continue
        }
        accepted++
        expect(lite, text).toEqual(parse(text))
      }
    }
    // The subset must cover a good share of what a YAML writer produces, or the fast path is pointless.
    expect(accepted).toBeGreaterThan(400)
    expect(left).toBeGreaterThan(0)
  })
})
