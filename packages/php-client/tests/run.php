<?php

/**
 * PHP client tests, no framework: `php tests/run.php`.
 *  - Always: the shared test vectors (tests/publish-auth.vectors.json, a copy of the server's
 *    packages/protocol/src/publish-auth.vectors.json that the server's tests keep identical), proving
 *    the PHP and TypeScript implementations build identical canonical strings and signatures.
 *  - With PUSH_TEST_URL set (the node test tests/security/php-client.test.ts does this, against a
 *    real publisher): publishing, batches, online status, minting and refusals end to end.
 * Prints one "ok"/"not ok" line per check; exits 1 if any failed.
 */

declare(strict_types=1);

require __DIR__ . '/bootstrap.php';

use PushServer\Channels;
use PushServer\PushClient;
use PushServer\PushException;
use PushServer\Signer;

function expectRefusal(string $name, callable $fn, int $status, int $code): void
{
    try {
        $fn();
        check($name, false, 'no exception');
    } catch (PushException $e) {
        check($name, $e->httpStatus === $status && $e->pushCode === $code, "got HTTP {$e->httpStatus} code {$e->pushCode}: {$e->getMessage()}");
    }
}

// ---- shared vectors --------------------------------------------------------------------------
$vectors = vectors();
$ed = $vectors['ed25519'];
$seedPair = sodium_crypto_sign_seed_keypair(hex2bin($ed['seedHex']));
check('vectors: sodium derives the same key pair from the seed', base64_encode(sodium_crypto_sign_secretkey($seedPair)) === $ed['secretKeyBase64'] && base64_encode(sodium_crypto_sign_publickey($seedPair)) === $ed['publicKeyBase64']);
$edSigner = Signer::ed25519($ed['keyId'], $ed['secretKeyBase64']);
$macSigner = Signer::hmac($vectors['hmac']['keyId'], $vectors['hmac']['secret']);
foreach ($vectors['requests'] as $r) {
    check("vectors: {$r['name']}: body hash", hash('sha256', $r['body']) === $r['bodySha256']);
    foreach ([[$edSigner, 'ed25519'], [$macSigner, 'hmac']] as [$signer, $kind]) {
        $canonical = Signer::canonical($r['method'], $r['target'], $r['timestamp'], $r['nonce'], $signer->keyId, $r['body']);
        check("vectors: {$r['name']}: $kind canonical string", $canonical === $r[$kind]['canonical'], json_encode($canonical));
        $h = $signer->headers($r['method'], $r['target'], $r['body'], $r['timestamp'], $r['nonce']);
        check("vectors: {$r['name']}: $kind signature", $h['X-Push-Signature'] === $r[$kind]['signature']);
    }
}
foreach ($vectors['channels'] as $c) {
    check("vectors: channel signature ({$c['algorithm']})", (new Channels($c['key'], $c['algorithm']))->sign($c['id']) === $c['signed']);
}
check('mint: 32 lowercase hex characters, fresh each time', Channels::isValid(Channels::mint()) && Channels::mint() !== Channels::mint());
try {
    Signer::hmac('k', 'too short');
    check('hmac secrets shorter than 32 characters are refused', false);
} catch (InvalidArgumentException) {
    check('hmac secrets shorter than 32 characters are refused', true);
}

// ---- against a running publisher -------------------------------------------------------------
$url = getenv('PUSH_TEST_URL');
if ($url !== false && $url !== '') {
    $edClient = new PushClient($url, Signer::fromKeyFile((string) getenv('PUSH_TEST_ED_KEY')));
    $macClient = new PushClient($url, Signer::fromKeyFile((string) getenv('PUSH_TEST_HMAC_KEY')), '/pub/');
    $strangerClient = new PushClient($url, Signer::fromKeyFile((string) getenv('PUSH_TEST_STRANGER_KEY')));
    $channel = (string) getenv('PUSH_TEST_CHANNEL');
    $offline = Channels::mint();
    $run = static function (string $name, callable $fn): void {
        try {
            $fn();
            check($name, true);
        } catch (Throwable $e) {
            check($name, false, get_class($e) . ': ' . $e->getMessage());
        }
    };
    $run('live: Ed25519 single publish', fn () => $edClient->publish([$channel], ['module_id' => 'php', 'command' => 'ed25519', 'params' => ['text' => 'Привет']], 60));
    $run('live: HMAC single publish', fn () => $macClient->publish([$channel], ['module_id' => 'php', 'command' => 'hmac', 'params' => []], 60));
    $run('live: batch publish, one signature', fn () => $edClient->publishBatch([
        ['channels' => [$channel], 'body' => ['module_id' => 'php', 'command' => 'batch1', 'params' => []], 'expiry' => 60],
        ['channels' => [$channel, $offline], 'body' => ['module_id' => 'php', 'command' => 'batch2', 'params' => []], 'expiry' => 60],
    ]));
    $run('live: online status lists only the subscribed channel', function () use ($edClient, $channel, $offline): void {
        $online = $edClient->onlineChannels([$channel, $offline]);
        if ($online !== [$channel]) {
            throw new RuntimeException('got ' . json_encode($online));
        }
    });
    $run('live: mint on the server', function () use ($macClient): void {
        $minted = $macClient->mintChannels(2);
        if (count($minted) !== 2 || !Channels::isValid($minted[0]['id']) || $minted[0]['readableUntil'] - $minted[0]['created'] !== 86400000) {
            throw new RuntimeException('got ' . json_encode($minted));
        }
    });
    expectRefusal('live: unknown key id is refused (401, 4122)', fn () => $strangerClient->publish([$channel], ['module_id' => 'php', 'command' => 'stranger']), 401, 4122);
    expectRefusal('live: a bad message type is refused (400, 4105)', fn () => $edClient->publish([$channel], ['module_id' => 'php', 'command' => 'typed'], 60, 'no spaces allowed'), 400, 4105);
    expectRefusal('live: expired channel tells the portal to rotate (410, 4126)', fn () => $edClient->publish([(string) getenv('PUSH_TEST_EXPIRED_CHANNEL')], ['module_id' => 'php', 'command' => 'late']), 410, 4126);
    try {
        (new PushClient('http://127.0.0.1:1', Signer::fromKeyFile((string) getenv('PUSH_TEST_ED_KEY'))))->publish([$channel], ['x' => 1]);
        check('live: unreachable server throws', false);
    } catch (PushException $e) {
        check('live: unreachable server throws', $e->httpStatus === 0 && str_contains($e->getMessage(), 'cannot reach'));
    }
}

finish();
