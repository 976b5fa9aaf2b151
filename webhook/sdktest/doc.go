// Package sdktest checks intake's webhook schemes against the providers'
// own official Go SDKs: requests signed by an SDK verify under intake, and
// requests intake signs verify under the SDK's own verifier, where the SDK
// has one. It is a module of its own, so that the core depends on none of
// them; its tests are all it holds.
package sdktest
