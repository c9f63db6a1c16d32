package main

import "errors"

func writePlot(path string, o *options, rs []*Result) error {
	return errors.New("-plot is not written yet")
}
