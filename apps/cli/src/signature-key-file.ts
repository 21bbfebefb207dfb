/**
 * What `pushctl mint --signature-key-file FILE` reads. The README tells operators the key lives in
 * the stack's config file (`.push/config.env`, KEY=VALUE lines with comments), so that format is
 * read for its PUSH_SIGNATURE_KEY (and PUSH_SIGNATURE_ALGO); a file holding only the key is read as
 * the key. Anything else is refused: signing with a whole file's text would mint ids that every
 * listener refuses with 4010.
 */
export type SignatureKeyFile =
  | { readonly ok: true; readonly key: string; readonly algo?: string; readonly form: 'bare' | 'env' }
  | { readonly ok: false; readonly reason: string };

const ASSIGNMENT = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$/;

function unquote(v: string): string {
  const t = v.trim();
  return t.length >= 2 && (t[0] === '"' || t[0] === "'") && t[t.length - 1] === t[0] ? t.slice(1, -1) : t;
}

export function readSignatureKeyFile(text: string): SignatureKeyFile {
  const lines = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '');
  const content = lines.filter((l) => !l.startsWith('#'));
  // An environment file: at least one NAME=value line whose name is a setting (upper case), so a
  // bare base64 key ending in '=' is not mistaken for one.
  const assignments = content.map((l) => ASSIGNMENT.exec(l)).filter((m): m is RegExpExecArray => m !== null && /^[A-Z_][A-Z0-9_]*$/.test(m[1] ?? ''));
  if (assignments.length > 0) {
    let key: string | undefined;
    let algo: string | undefined;
    // Last one wins, as in the processes' own reading of the file.
    for (const m of assignments) {
      if (m[1] === 'PUSH_SIGNATURE_KEY') key = unquote(m[2] ?? '');
      if (m[1] === 'PUSH_SIGNATURE_ALGO') algo = unquote(m[2] ?? '');
    }
    if (key === undefined || key === '') return { ok: false, reason: 'is a KEY=VALUE settings file without a PUSH_SIGNATURE_KEY line' };
    return algo === undefined || algo === '' ? { ok: true, key, form: 'env' } : { ok: true, key, algo, form: 'env' };
  }
  if (content.length === 0) return { ok: false, reason: 'holds no key' };
  if (lines.length !== 1 || /\s/.test(content[0] ?? '')) {
    return { ok: false, reason: 'is neither a file holding only the key (one line) nor a KEY=VALUE settings file with PUSH_SIGNATURE_KEY=' };
  }
  return { ok: true, key: content[0] ?? '', form: 'bare' };
}
