// Package all links the built-in plugins into a binary: importing it runs
// their init functions, which register them by name. The core never imports
// a concrete plugin; the command does, through this package.
package all
