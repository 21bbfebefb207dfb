<?php

/** Shared by the test scripts: the package autoloader and one "ok"/"not ok" line per check. */

declare(strict_types=1);

require __DIR__ . '/../autoload.php';

$failures = 0;

function check(string $name, bool $ok, string $detail = ''): void
{
    global $failures;
    if (!$ok) {
        $failures++;
    }
    echo ($ok ? 'ok' : 'not ok') . " - $name" . ($ok || $detail === '' ? '' : ": $detail") . "\n";
}

/** Prints the summary and exits 1 if any check failed. */
function finish(): never
{
    global $failures;
    echo $failures === 0 ? "all passed\n" : "$failures failed\n";
    exit($failures === 0 ? 0 : 1);
}

/** @return array<string, mixed> the shared signing vectors (this package's copy) */
function vectors(): array
{
    return json_decode((string) file_get_contents(__DIR__ . '/publish-auth.vectors.json'), true, 512, JSON_THROW_ON_ERROR);
}
