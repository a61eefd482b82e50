// Drives Debian's headless Chromium through playwright-core for the browser tests.
//
// Usage: node browser.mjs '<JSON list of steps>'
// Steps (run in order on one page):
//   {"goto": url}                              load a page
//   {"fill": selector, "value": text}          type into an input or textarea
//   {"select": selector, "value": option}      choose an option of a <select>
//   {"click": selector}                        click an element
//   {"wait_text": selector, "contains": text}  wait until the element's text contains text; result: the text
//   {"text": selector}                         result: the element's text now
//   {"wait_for": expression}                   wait until the expression is truthy in the page; result: its value
//   {"eval": expression}                       result: the expression's value in the page
//   {"screenshot": path}                       save a PNG of the page
// Every step may carry "timeout" (ms, default 10000). Prints one JSON object:
// {"ok": true, "results": [...one per step...], "console": [...page console lines...]}
// or, on the first failing step, {"ok": false, "step": i, "error": "...", "console": [...]} with exit code 1.
import { chromium } from 'playwright-core';

const steps = JSON.parse(process.argv[2]);
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const consoleLines = [];
const browser = await chromium.launch({
  executablePath,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
let exitCode = 0;
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
  page.on('console', (message) => consoleLines.push(`${message.type()}: ${message.text()}`));
  page.on('pageerror', (error) => consoleLines.push(`pageerror: ${error.message}`));
  const results = [];
  for (const [index, step] of steps.entries()) {
    const timeout = step.timeout ?? 10000;
    try {
      if ('goto' in step) {
        await page.goto(step.goto, { timeout });
        results.push(null);
      } else if ('fill' in step) {
        await page.fill(step.fill, step.value, { timeout });
        results.push(null);
      } else if ('select' in step) {
        await page.selectOption(step.select, step.value, { timeout });
        results.push(null);
      } else if ('click' in step) {
        await page.click(step.click, { timeout });
        results.push(null);
      } else if ('wait_text' in step) {
        await page.waitForFunction(
          ([selector, text]) => {
            const element = document.querySelector(selector);
            return element !== null && element.textContent.includes(text);
          },
          [step.wait_text, step.contains],
          { timeout },
        );
        results.push(await page.textContent(step.wait_text));
      } else if ('wait_for' in step) {
        // polled with page.evaluate, not waitForFunction: a string predicate there is compiled by
        // eval in the page, which a Content-Security-Policy without 'unsafe-eval' (the console's) forbids
        const deadline = Date.now() + timeout;
        let value = await page.evaluate(step.wait_for);
        while (!value) {
          if (Date.now() > deadline) throw new Error(`wait_for: still false after ${timeout} ms: ${step.wait_for}`);
          await new Promise((resolve) => setTimeout(resolve, 50));
          value = await page.evaluate(step.wait_for);
        }
        results.push(value);
      } else if ('text' in step) {
        results.push(await page.textContent(step.text, { timeout }));
      } else if ('eval' in step) {
        results.push(await page.evaluate(step.eval));
      } else if ('screenshot' in step) {
        await page.screenshot({ path: step.screenshot, fullPage: step.full_page ?? false });
        results.push(null);
      } else {
        throw new Error(`unknown step ${JSON.stringify(step)}`);
      }
    } catch (error) {
      const body = await page.evaluate(() => document.body ? document.body.innerText : '').catch(() => '');
      console.log(JSON.stringify({ ok: false, step: index, error: String(error), page: body.slice(0, 4000),
                                   console: consoleLines }));
      exitCode = 1;
      break;
    }
  }
  if (exitCode === 0) {
    console.log(JSON.stringify({ ok: true, results, console: consoleLines }));
  }
} finally {
  await browser.close();
}
process.exit(exitCode);
