<?php

declare(strict_types=1);

namespace PushServer;

/**
 * Signs publisher requests as the server's docs/security.md specifies:
 *
 *   PUSHSIG1 \n METHOD \n path?query \n timestamp \n nonce \n keyId \n hex(sha256(body))
 *
 * signed with Ed25519 (sodium, the same bytes tweetnacl produces) or HMAC-SHA256, sent as the
 * headers X-Push-Key-Id, X-Push-Timestamp, X-Push-Nonce and X-Push-Signature (lowercase hex).
 */
final class Signer
{
    public const SCHEME = 'PUSHSIG1';

    private function __construct(
        public readonly string $keyId,
        public readonly string $algorithm,
        #[\SensitiveParameter] private readonly string $secret,
    ) {
        if (!preg_match('/^[A-Za-z0-9_.-]{1,64}$/', $keyId)) {
            throw new \InvalidArgumentException('key id must be 1-64 characters from A-Z a-z 0-9 _ . -');
        }
    }

    /** Length of a sodium/tweetnacl Ed25519 secret key (seed and public key); literal so it needs no sodium. */
    private const ED25519_SECRET_KEY_BYTES = 64;

    /** Whether this PHP can sign with Ed25519 (the sodium extension, bundled with PHP but optional). */
    public static function ed25519Available(): bool
    {
        return function_exists('sodium_crypto_sign_detached');
    }

    /**
     * $secretKey: the 64-byte sodium/tweetnacl secret key, raw or base64 (as `pushctl keygen` writes it).
     * Needs the sodium extension; without it this throws a \RuntimeException saying so at once, not
     * on the first publish (portals without sodium use Signer::hmac()).
     */
    public static function ed25519(string $keyId, #[\SensitiveParameter] string $secretKey): self
    {
        if (!self::ed25519Available()) {
            throw new \RuntimeException('Ed25519 signing needs the PHP sodium extension, which this PHP lacks (or has disabled): enable ext-sodium, or use an HMAC key (pushctl keygen --hmac, Signer::hmac()) instead');
        }
        if (strlen($secretKey) !== self::ED25519_SECRET_KEY_BYTES) {
            $decoded = base64_decode($secretKey, true);
            if ($decoded === false || strlen($decoded) !== self::ED25519_SECRET_KEY_BYTES) {
                throw new \InvalidArgumentException('Ed25519 secret key must be 64 bytes, raw or base64');
            }
            $secretKey = $decoded;
        }
        return new self($keyId, 'ed25519', $secretKey);
    }

    /** For portals without sodium (needs only the always-present hash extension); secrets of 32+ characters. */
    public static function hmac(string $keyId, #[\SensitiveParameter] string $secret): self
    {
        if (strlen($secret) < 32) {
            throw new \InvalidArgumentException('HMAC secret must be at least 32 characters');
        }
        return new self($keyId, 'hmac-sha256', $secret);
    }

    /** Reads a key file written by `pushctl keygen` (ed25519 or hmac-sha256). */
    public static function fromKeyFile(string $path): self
    {
        $json = @file_get_contents($path);
        if ($json === false) {
            throw new \InvalidArgumentException("cannot read key file $path");
        }
        $k = json_decode($json, true);
        if (!is_array($k) || !isset($k['keyId'], $k['algorithm'])) {
            throw new \InvalidArgumentException("key file $path is not a pushctl key file");
        }
        return match ($k['algorithm']) {
            'ed25519' => self::ed25519((string) $k['keyId'], (string) ($k['secretKey'] ?? '')),
            'hmac-sha256' => self::hmac((string) $k['keyId'], (string) ($k['secret'] ?? '')),
            default => throw new \InvalidArgumentException('unknown algorithm ' . $k['algorithm']),
        };
    }

    public static function canonical(string $method, string $target, int $timestamp, string $nonce, string $keyId, string $body): string
    {
        return implode("\n", [self::SCHEME, strtoupper($method), $target, (string) $timestamp, $nonce, $keyId, hash('sha256', $body)]);
    }

    /** Lowercase hex signature of a canonical string. */
    public function sign(string $canonical): string
    {
        return $this->algorithm === 'ed25519'
            ? bin2hex(sodium_crypto_sign_detached($canonical, $this->secret))
            : hash_hmac('sha256', $canonical, $this->secret);
    }

    /**
     * The four headers for one request. $timestamp and $nonce are for tests; leave them null.
     * @return array<string, string>
     */
    public function headers(string $method, string $target, string $body, ?int $timestamp = null, ?string $nonce = null): array
    {
        $timestamp ??= time();
        $nonce ??= bin2hex(random_bytes(16));
        return [
            'X-Push-Key-Id' => $this->keyId,
            'X-Push-Timestamp' => (string) $timestamp,
            'X-Push-Nonce' => $nonce,
            'X-Push-Signature' => $this->sign(self::canonical($method, $target, $timestamp, $nonce, $this->keyId, $body)),
        ];
    }
}
