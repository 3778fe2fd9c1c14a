package org.elasticsearch.node;

import org.elasticsearch.env.Environment;
import org.elasticsearch.plugins.ClasspathPluginsService;
import org.elasticsearch.plugins.Plugin;
import org.elasticsearch.plugins.PluginsLoader;
import org.elasticsearch.plugins.PluginsService;

import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * An Elasticsearch {@link Node} whose plugins are classes on the classpath (e.g. Netty4Plugin), for the
 * local test server in tools/elasticsearch. In this package because the Node constructor taking a
 * {@link NodeConstruction} and {@link NodeServiceProvider} are package-private.
 */
public class ClasspathPluginsNode extends Node {

    public ClasspathPluginsNode(Environment environment, Collection<Class<? extends Plugin>> classpathPlugins) {
        super(
            NodeConstruction.prepareConstruction(
                environment,
                PluginsLoader.createPluginsLoader(Set.of(), Set.of(), Map.of(), false),
                new ClasspathServiceProvider(List.copyOf(classpathPlugins)),
                true
            )
        );
    }

    private static final class ClasspathServiceProvider extends NodeServiceProvider {
        private final List<Class<? extends Plugin>> classpathPlugins;

        ClasspathServiceProvider(List<Class<? extends Plugin>> classpathPlugins) {
            this.classpathPlugins = classpathPlugins;
        }

        @Override
        PluginsService newPluginService(Environment initialEnvironment, PluginsLoader pluginsLoader) {
            return new ClasspathPluginsService(
                initialEnvironment.settings(),
                initialEnvironment.configDir(),
                pluginsLoader,
                classpathPlugins
            );
        }
    }
}
