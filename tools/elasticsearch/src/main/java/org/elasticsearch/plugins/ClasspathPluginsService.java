package org.elasticsearch.plugins;

import org.elasticsearch.common.settings.Settings;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;

/**
 * A {@link PluginsService} whose plugins are classes already on the JVM classpath (no plugin directories,
 * no separate class loaders). Lives in this package because {@code PluginsService.LoadedPlugin} is
 * package-private. Used only by the local test node in tools/elasticsearch.
 */
public class ClasspathPluginsService extends PluginsService {

    private final List<LoadedPlugin> classpathPlugins;

    public ClasspathPluginsService(
        Settings settings,
        Path configPath,
        PluginsLoader pluginsLoader,
        Collection<Class<? extends Plugin>> pluginClasses
    ) {
        super(settings, configPath, pluginsLoader);
        List<LoadedPlugin> loaded = new ArrayList<>(super.plugins());
        for (Class<? extends Plugin> pluginClass : pluginClasses) {
            PluginDescriptor descriptor = ClasspathPluginDescriptor.of(pluginClass);
            loaded.add(new LoadedPlugin(descriptor, instantiate(pluginClass, settings, configPath), pluginClass.getClassLoader()));
        }
        loadExtensions(loaded);
        this.classpathPlugins = List.copyOf(loaded);
    }

    private static Plugin instantiate(Class<? extends Plugin> pluginClass, Settings settings, Path configPath) {
        try {
            try {
                return pluginClass.getConstructor(Settings.class, Path.class).newInstance(settings, configPath);
            } catch (NoSuchMethodException e) {
                try {
                    return pluginClass.getConstructor(Settings.class).newInstance(settings);
                } catch (NoSuchMethodException e2) {
                    return pluginClass.getConstructor().newInstance();
                }
            }
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException("cannot instantiate plugin " + pluginClass.getName(), e);
        }
    }

    @Override
    protected List<LoadedPlugin> plugins() {
        return classpathPlugins;
    }
}
