// Package browsertest drives the console in headless Chromium (Debian's
// chromium, through go-rod): a module of its own, so that the core never
// depends on a browser driver.
package browsertest
