// Package open turns a store URL, as written in a drive's config or on the
// command line, into a remote.Store:
//
//	/path/to/dir, ./dir, file:///path/to/dir   a local directory (remote/dirstore)
//	http(s)://[TOKEN@]host:port[/path]         a node server (remote/node client)
//	s3://bucket[/prefix]?endpoint=host:port&region=R&secure=false&keys=NAME
//	                                           an S3 bucket (remote/s3store), with the
//	                                           credentials in AWS_ACCESS_KEY_ID and
//	                                           AWS_SECRET_ACCESS_KEY (with keys=NAME,
//	                                           in AWS_ACCESS_KEY_ID_NAME and
//	                                           AWS_SECRET_ACCESS_KEY_NAME)
//
// A URL it cannot read gets a one-line error that lists the accepted forms.
// Tokens never appear in errors.
//
// It also builds a drive's grid from its node list (NewGrid): each store
// opened (a store that cannot be opened stands in as a down node, opened
// again by later calls, unless Strict), wrapped in the Stack of metrics
// and bandwidth limits, then the sealer and the remote.Grid over them. With the key wrapping of
// remote/keyring and the names and errors of remote that a program
// handles, re-exported here, a command needs no package of remote but
// this one (and remote/node to serve a node).
package open
