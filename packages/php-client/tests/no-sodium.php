<?php

/**
 * The client on a PHP without sodium, as an HMAC-only portal has it. Run with sodium's functions
 * disabled, e.g. `php -d disable_functions=sodium_crypto_sign_detached tests/no-sodium.php`
 * (the node test tests/security/php-client.test.ts does this): HMAC signing works and matches the
 * shared vectors, Ed25519 fails at once with a message naming the missing extension. With
 * PUSH_TEST_URL, PUSH_TEST_HMAC_KEY, PUSH_TEST_ED_KEY and PUSH_TEST_CHANNEL it also publishes live.
 */

declare(strict_types=1);

require __DIR__ . '/bootstrap.php';

use PushServer\PushClient;
use PushServer\Signer;

check('sodium signing is unavailable in this run', !Signer::ed25519Available() && !function_exists('sodium_crypto_sign_detached'));

$vectors = vectors();
$mac = Signer::hmac($vectors['hmac']['keyId'], $vectors['hmac']['secret']);
foreach ($vectors['requests'] as $r) {
    $h = $mac->headers($r['method'], $r['target'], $r['body'], $r['timestamp'], $r['nonce']);
    check("vectors without sodium: {$r['name']}: hmac signature", $h['X-Push-Signature'] === $r['hmac']['signature']);
}

/** Runs $fn and checks it throws a \RuntimeException whose message names sodium and the HMAC way out. */
function expectNoSodium(string $name, callable $fn): void
{
    try {
        $fn();
        check($name, false, 'no exception');
    } catch (RuntimeException $e) {
        $msg = $e->getMessage();
        check($name, str_contains($msg, 'sodium extension') && str_contains($msg, 'HMAC'), get_class($e) . ': ' . $msg);
    } catch (Throwable $e) {
        check($name, false, 'unclear failure ' . get_class($e) . ': ' . $e->getMessage());
    }
}
expectNoSodium('Ed25519 without sodium: a clear error from Signer::ed25519', fn () => Signer::ed25519($vectors['ed25519']['keyId'], $vectors['ed25519']['secretKeyBase64']));

$url = getenv('PUSH_TEST_URL');
if ($url !== false && $url !== '') {
    expectNoSodium('Ed25519 without sodium: a clear error from an Ed25519 key file', fn () => Signer::fromKeyFile((string) getenv('PUSH_TEST_ED_KEY')));
    try {
        (new PushClient($url, Signer::fromKeyFile((string) getenv('PUSH_TEST_HMAC_KEY'))))->publish([(string) getenv('PUSH_TEST_CHANNEL')], ['module_id' => 'php', 'command' => 'no-sodium', 'params' => []], 60);
        check('live: HMAC publish without sodium', true);
    } catch (Throwable $e) {
        check('live: HMAC publish without sodium', false, get_class($e) . ': ' . $e->getMessage());
    }
}

finish();
