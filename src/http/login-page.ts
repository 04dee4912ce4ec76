/**
 * The login form. Plain HTML with no script and no inline style (the CSP forbids both); it uses
 * the dashboard's stylesheet, which is served without a login for this page.
 */

/** Text for HTML content and attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}

export function loginPage(error?: string, user = ''): string {
  const message = error === undefined ? '' : `\n<p class="error" role="alert">${escapeHtml(error)}</p>`
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Outpost: log in</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/assets/style.css">
</head>
<body class="login">
<header><h1>Outpost</h1></header>${message}
<main>
<section class="login">
<h2>Log in</h2>
<form method="post" action="/login">
<p><label for="username">User name</label><br><input id="username" name="username" autocomplete="username" required value="${escapeHtml(user)}"></p>
<p><label for="password">Password</label><br><input id="password" name="password" type="password" autocomplete="current-password" required></p>
<p><button type="submit">Log in</button></p>
</form>
</section>
</main>
</body>
</html>
`
}
